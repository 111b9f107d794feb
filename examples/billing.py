"""Billing (seed 002): wait for the invoice date, try to charge three times a day apart,
then record the payment and send the receipt in parallel."""

from __future__ import annotations

from typing import Any

from examples.app import app
from examples.services import mailer, payments
from sdk import Context, Retry


@app.workflow("billing", trigger="billing/invoice.created", retries=Retry(max_attempts=3))
def billing(ctx: Context) -> dict[str, Any]:
    account = ctx.event.data["accountId"]
    amount = ctx.event.data["amount"]
    ctx.step.sleep_until("wait-for-invoice-date", ctx.event.data["invoiceDate"])

    for attempt in range(3):
        # The same step id each time round: the engine numbers the repeats
        # ("attempt-charge", "attempt-charge#2", ...) so each is recorded on its own.
        # The idempotency key makes a re-run after a crash return the same charge.
        key = f"{ctx.run_id}/charge/{attempt}"
        charge = ctx.step.run("attempt-charge", payments.charge, account, amount, key)
        if charge["success"]:
            break
        ctx.step.sleep("wait-24h", "24h")
    else:
        ctx.step.run("handle-failed-payment", mailer.send, account, "payment-failed")
        return {"success": False, "account": account}

    # Both branches run at once; each is its own durable step.
    ctx.step.parallel(
        lambda: ctx.step.run("update-db", payments.record_payment, charge),
        lambda: ctx.step.run("send-receipt", mailer.send, account, "receipt"),
    )
    return charge
