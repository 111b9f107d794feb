"""The example workflows driven through fixed scripts, with a comparable final state.

Event ids are fixed, so run ids are the same on every execution of a script, and a
faulted execution can be compared with a clean one run for run, step for step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from examples import app, services
from infra.local import LocalRuntime
from sdk import Event
from tests.conftest import START


@dataclass(frozen=True)
class Scenario:
    name: str
    script: Callable[[LocalRuntime], None]
    prepare: Callable[[], None] = lambda: None


def _onboarding_inactive(rt: LocalRuntime) -> None:
    rt.send(Event(name="user/signup", data={"userId": "u1"}, id="signup-1"))
    rt.advance(timedelta(days=9))


def _onboarding_active(rt: LocalRuntime) -> None:
    rt.send(Event(name="user/signup", data={"userId": "u2"}, id="signup-2"))
    services.users.activate("u2")
    rt.advance(timedelta(days=9))


def _billing_prepare() -> None:
    services.payments.script["acct-1"] = [False, False, True]


def _billing(rt: LocalRuntime) -> None:
    rt.send(
        Event(
            name="billing/invoice.created",
            data={
                "accountId": "acct-1",
                "amount": 900,
                "invoiceDate": (START + timedelta(days=1)).isoformat(),
            },
            id="invoice-1",
        )
    )
    rt.advance(timedelta(days=4))


def _campaign_profile(rt: LocalRuntime) -> None:
    rt.send(Event(name="app/user.signup", data={"userId": "u3"}, id="campaign-3"))
    rt.advance(timedelta(hours=3))
    rt.send(Event(name="app/user.profile.completed", data={"userId": "u3"}, id="profile-3"))
    rt.advance(timedelta(days=11))


def _campaign_cancelled(rt: LocalRuntime) -> None:
    rt.send(Event(name="app/user.signup", data={"userId": "u4"}, id="campaign-4"))
    rt.advance(timedelta(days=2))
    rt.send(Event(name="app/user.deleted", data={"userId": "u4"}, id="deleted-4"))
    rt.advance(timedelta(days=11))


def _order(rt: LocalRuntime) -> None:
    rt.send(
        Event(
            name="shop/order.placed",
            data={
                "customerId": "c9",
                "amount": 1200,
                "skus": ["tea", "cup"],
                "placedAt": START.isoformat(),
            },
            id="order-9",
        )
    )
    rt.advance(timedelta(days=1))


SCENARIOS = [
    Scenario("onboarding-inactive", _onboarding_inactive),
    Scenario("onboarding-active", _onboarding_active),
    Scenario("billing-retries", _billing, _billing_prepare),
    Scenario("campaign-profile", _campaign_profile),
    Scenario("campaign-cancelled", _campaign_cancelled),
    Scenario("order-invokes-billing", _order),
]


def _plain(value: Any) -> Any:
    """A step output without its timestamps (which move when a crash delays things)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in ("ts",)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def final_state(rt: LocalRuntime) -> dict[str, Any]:
    """Every run's status, output and error type, and every step's id, kind, status,
    attempts and output: what a user would compare."""
    state = {}
    for run in rt.runs(limit=1000):
        steps = [
            (s.position, s.id, s.kind, s.status, s.attempts, _plain(s.output))
            for s in rt.history(run.run_id)
        ]
        state[run.run_id] = {
            "workflow": run.workflow_id,
            "status": run.status,
            "output": _plain(run.output),
            "error": run.error.type if run.error else None,
            "steps": steps,
        }
    return state


def side_effects() -> Counter[str]:
    """What the outside world saw: emails by template, charges, payments recorded."""
    seen: Counter[str] = Counter(
        f"mail:{user}:{template}" for user, template in services.mailer.sent
    )
    seen["charge calls"] = services.payments.calls
    seen["payments recorded"] = len(services.payments.recorded)
    return seen


def execute(
    scenario: Scenario,
    *,
    on_start: Callable[[LocalRuntime], None] = lambda rt: None,
    **runtime_options: Any,
) -> tuple[dict[str, Any], Counter[str], LocalRuntime]:
    services.reset()
    scenario.prepare()
    with LocalRuntime(app, start=START, **runtime_options) as rt:
        on_start(rt)
        scenario.script(rt)
        rt.drain()
        return final_state(rt), side_effects(), rt
