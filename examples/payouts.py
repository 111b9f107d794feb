"""A map with a completion policy: pay every seller of the week, tolerating a few failures.

`ctx.step.map` calls `pay(seller, index)` for each seller, at most five at a time; each
call is a scope of its own whose steps are recorded under it, so a crash or a suspension
in the middle never pays a seller twice. `tolerated_failure_percentage=25` makes the map
return a `BatchResult` instead of raising on the first failure: the run keeps the
successes, reports the failures, and only gives up (FAILURE_TOLERANCE_EXCEEDED) when more
than a quarter of the payouts fail.
"""

from __future__ import annotations

from typing import Any

from examples.app import app
from examples.services import mailer, payments
from sdk import Context, NonRetriableError, Retry


def transfer(seller: dict[str, Any], run_id: str) -> dict[str, Any]:
    charge = payments.charge(
        seller["id"], -seller["amount"], idempotency_key=f"{run_id}:{seller['id']}"
    )
    if not charge["success"]:
        raise NonRetriableError(f"the bank refused the payout to {seller['id']}")
    return {"seller": seller["id"], "payout": charge["id"]}


@app.workflow("weekly-payouts", trigger="payouts/week.closed")
def weekly_payouts(ctx: Context) -> dict[str, Any]:
    sellers: list[dict[str, Any]] = ctx.event.data["sellers"]

    def pay(seller: dict[str, Any], index: int) -> dict[str, Any]:
        return ctx.step.run("transfer", transfer, seller, ctx.run_id, retries=Retry(max_attempts=2))

    result = ctx.step.map(
        "pay-sellers",
        sellers,
        pay,
        max_concurrency=5,
        tolerated_failure_percentage=25,
        item_namer=lambda seller, index: f"pay-{seller['id']}",
    )
    failed = [item.name.removeprefix("pay-") for item in result.failed()]
    if failed:
        ctx.step.run("alert-finance", mailer.send, "finance", f"payouts-failed:{len(failed)}")
    return {
        "outcome": str(result.completion_reason),
        "paid": [payout["seller"] for payout in result.results()],
        "failed": failed,
    }
