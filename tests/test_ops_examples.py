"""The durable-operation examples end to end on moto with virtual time: the expense
approval (a callback) and the weekly payouts (a map with a completion policy)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from examples import app, services
from infra.local import LocalRuntime
from sdk import CallbackError, Event
from tests.conftest import START


@pytest.fixture(autouse=True)
def fresh_services():
    services.reset()
    yield
    services.reset()


def expense(employee: str, amount: int) -> Event:
    return Event(name="expense/submitted", data={"employeeId": employee, "amount": amount})


def test_a_small_expense_is_approved_by_policy_without_a_callback():
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(expense("ann", 2_500))
        assert rt.run(run_id).output["status"] == "reimbursed"
        assert rt.run(run_id).output["by"] == "policy"
        assert services.approvals.requests == []


def test_a_large_expense_waits_for_the_managers_answer_then_is_reimbursed():
    with LocalRuntime(app, start=START) as rt:
        # GIVEN a large expense: the approver got a request, the run waits
        [run_id] = rt.send(expense("bob", 48_000))
        assert rt.run(run_id).status == "WAITING"
        callback_id = services.approvals.pending_for("bob")
        [callback] = [step for step in rt.history(run_id) if step.kind == "callback"]
        assert (callback.status, callback.callback_id) == ("WAITING", callback_id)
        # WHEN the manager approves a day later
        rt.advance(timedelta(days=1))
        rt.complete_callback(callback_id, result={"approved": True, "by": "carol"})
        # THEN the run reimbursed once and told the employee
        run = rt.run(run_id)
        assert (run.status, run.output["status"], run.output["by"]) == (
            "COMPLETED",
            "reimbursed",
            "carol",
        )
        assert [c["amount"] for c in services.payments.charges] == [-48_000]
        assert services.mailer.sent == [("bob", "expense-approved")]
        # AND the submitter ran once though the run replayed; a second answer is refused
        assert len(services.approvals.requests) == 1
        with pytest.raises(CallbackError, match="already"):
            rt.fail_callback(callback_id, error_type="Rejected")
        assert rt.run(run_id).output["status"] == "reimbursed"


def test_a_rejected_expense_and_an_unanswered_one_are_refused():
    with LocalRuntime(app, start=START) as rt:
        [rejected] = rt.send(expense("dan", 30_000))
        [ignored] = rt.send(expense("eve", 30_000))
        rt.fail_callback(
            services.approvals.pending_for("dan"),
            error_type="Rejected",
            error_message="not a business expense",
        )
        assert rt.run(rejected).output == {
            "status": "refused",
            "reason": "Rejected",
            "note": "not a business expense",
        }
        # No answer within three days: the callback times out
        rt.advance(timedelta(days=3, minutes=1))
        output = rt.run(ignored).output
        assert (output["status"], output["reason"]) == ("refused", "CallbackTimeoutError")
        assert services.payments.charges == []
        assert sorted(services.mailer.sent) == [
            ("dan", "expense-refused"),
            ("eve", "expense-refused"),
        ]


def sellers(count: int) -> list[dict]:
    return [{"id": f"s{index}", "amount": 1_000 + index} for index in range(count)]


def test_payouts_keep_the_successes_and_report_the_failures_within_the_tolerance():
    # GIVEN 8 sellers, the bank refuses 2 of them (25%: tolerated)
    services.payments.script.update({"s2": [False], "s5": [False]})
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="payouts/week.closed", data={"sellers": sellers(8)}))
        run = rt.run(run_id)
        assert run.status == "COMPLETED"
        assert run.output == {
            "outcome": "ALL_COMPLETED",
            "paid": ["s0", "s1", "s3", "s4", "s6", "s7"],
            "failed": ["s2", "s5"],
        }
        assert services.mailer.sent == [("finance", "payouts-failed:2")]
        # Each seller was paid at most once; runs show names each item
        assert len(services.payments.charges) == 8
        names = [step.id for step in rt.history(run_id) if step.kind == "map_item"]
        assert names == [f"pay-s{index}" for index in range(8)]


def test_payouts_stop_starting_transfers_once_the_tolerance_is_exceeded():
    # GIVEN 20 sellers, the bank refuses the first six (over 25%), which start first
    refused = [f"s{index}" for index in range(6)]
    services.payments.script.update({seller: [False] for seller in refused})
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="payouts/week.closed", data={"sellers": sellers(20)}))
        output = rt.run(run_id).output
        assert output["outcome"] == "FAILURE_TOLERANCE_EXCEEDED"
        assert output["failed"] == refused
        # Only the sellers whose item started were paid (the others never will be)
        started = {
            step.id.removeprefix("pay-") for step in rt.history(run_id) if step.kind == "map_item"
        }
        assert {charge["account"] for charge in services.payments.charges} == started
        assert len(services.payments.charges) == len(started)
