"""The two seed workflows, end to end on moto with virtual time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from examples import app, services
from infra.local import LocalRuntime
from sdk import Event
from tests.conftest import START


@pytest.fixture(autouse=True)
def fresh_services():
    services.reset()
    yield
    services.reset()


def steps_of(rt, run_id):
    return [(step.id, step.kind, step.status) for step in rt.history(run_id)]


def test_onboarding_for_a_user_who_never_activates_gets_nudged_then_flagged():
    with LocalRuntime(app, start=START) as rt:
        # GIVEN a signup
        [run_id] = rt.send(Event(name="user/signup", data={"userId": "u1"}))
        # THEN the welcome is sent at once and the run sleeps for a day
        assert services.mailer.sent == [("u1", "welcome")]
        assert rt.run(run_id).status == "SLEEPING"

        # WHEN a day passes, the user is still inactive: a reminder goes out
        rt.advance(timedelta(hours=24, seconds=1))
        assert services.mailer.sent == [("u1", "welcome"), ("u1", "reminder")]
        assert rt.run(run_id).status == "SLEEPING"

        # WHEN the week passes, the account is flagged and the run completes
        rt.advance(timedelta(days=7))
        run = rt.run(run_id)
        assert run.status == "COMPLETED"
        assert run.output == {"activated": False, "flagged": True}
        assert services.users.flagged == ["u1"]
        assert steps_of(rt, run_id) == [
            ("send-welcome", "run", "COMPLETED"),
            ("wait-24h", "sleep", "COMPLETED"),
            ("check-activation", "run", "COMPLETED"),
            ("send-reminder", "run", "COMPLETED"),
            ("wait-7d", "sleep", "COMPLETED"),
            ("check-week", "run", "COMPLETED"),
            ("flag-inactive", "run", "COMPLETED"),
        ]
        # Each step's code ran exactly once although the run was replayed three times.
        assert services.mailer.count("welcome") == 1


def test_onboarding_for_a_user_who_activates_sends_no_reminder_and_flags_nothing():
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="user/signup", data={"userId": "u2"}))
        services.users.activate("u2")
        rt.advance(timedelta(days=9))
        run = rt.run(run_id)
        assert run.status == "COMPLETED"
        assert run.output == {"activated": True, "flagged": False}
        assert services.mailer.sent == [("u2", "welcome")]
        assert [step_id for step_id, _, _ in steps_of(rt, run_id)] == [
            "send-welcome",
            "wait-24h",
            "check-activation",
            "wait-7d",
            "check-week",
        ]


def test_onboarding_sleeps_wake_on_time_not_before():
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="user/signup", data={"userId": "u3"}))
        rt.advance(timedelta(hours=23, minutes=59))
        assert services.mailer.count("reminder") == 0
        rt.advance(timedelta(minutes=2))
        assert services.mailer.count("reminder") == 1
        wait = next(step for step in rt.history(run_id) if step.id == "wait-24h")
        assert wait.ended_at - wait.started_at >= timedelta(hours=24)
        assert wait.ended_at - wait.started_at < timedelta(hours=24, seconds=2)


def invoice(account: str, days_ahead: int = 3) -> Event:
    return Event(
        name="billing/invoice.created",
        data={
            "accountId": account,
            "amount": 4900,
            "invoiceDate": (START + timedelta(days=days_ahead)).isoformat(),
        },
    )


def test_billing_waits_for_the_invoice_date_then_charges_and_records_in_parallel():
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(invoice("acct-1"))
        assert rt.run(run_id).status == "SLEEPING"
        assert services.payments.charges == []

        rt.advance(timedelta(days=3, seconds=1))
        run = rt.run(run_id)
        assert run.status == "COMPLETED"
        assert run.output["success"] is True
        assert len(services.payments.charges) == 1
        assert services.payments.recorded == [run.output["id"]]
        assert services.mailer.sent == [("acct-1", "receipt")]
        ids = [step.id for step in rt.history(run_id)]
        assert ids == ["wait-for-invoice-date", "attempt-charge", "update-db", "send-receipt"]


def test_billing_retries_the_charge_three_times_a_day_apart_under_one_step_id():
    services.payments.script["acct-2"] = [False, False, True]
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(invoice("acct-2", days_ahead=1))
        rt.advance(timedelta(days=1, seconds=1))
        assert len(services.payments.charges) == 1
        rt.advance(timedelta(days=1))
        assert len(services.payments.charges) == 2
        rt.advance(timedelta(days=1))
        run = rt.run(run_id)
        assert run.status == "COMPLETED"
        assert [charge["success"] for charge in services.payments.charges] == [False, False, True]
        history = rt.history(run_id)
        charges = [step for step in history if step.id.startswith("attempt-charge")]
        assert [step.id for step in charges] == [
            "attempt-charge",
            "attempt-charge#2",
            "attempt-charge#3",
        ]
        # A day between charges.
        assert charges[1].started_at - charges[0].started_at >= timedelta(hours=24)
        assert charges[2].started_at - charges[1].started_at >= timedelta(hours=24)


def test_billing_that_never_succeeds_handles_the_failed_payment():
    services.payments.script["acct-3"] = [False, False, False]
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(invoice("acct-3", days_ahead=0))
        rt.advance(timedelta(days=3))
        run = rt.run(run_id)
        assert run.status == "COMPLETED"
        assert run.output == {"success": False, "account": "acct-3"}
        assert services.mailer.sent == [("acct-3", "payment-failed")]
        assert services.payments.recorded == []
