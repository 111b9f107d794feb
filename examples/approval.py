"""Human in the loop: an expense above the limit waits for a manager's decision.

`wait_for_callback` records the callback, runs the submitter once as a step (here it
files the request in a stand-in inbox with the callback's id; a real app would email a
link or post a Slack button), and suspends the run: no thread waits, for as long as the
timeout allows. Whoever holds the id answers it from outside the run:
`rt.complete_callback(id, result={...})` or `rt.fail_callback(id, error_type=...)`,
`stepline callbacks complete ID --result JSON`, or, on a deployed stack, an event
`stepline/callback.completed` on the bus (README, "Callbacks"). A rejection (a failed
callback) and no answer within three days both raise `StepError` here.
"""

from __future__ import annotations

from typing import Any

from examples.app import app
from examples.services import approvals, mailer, payments
from sdk import Context, StepError

#: Expenses up to this amount (in cents) are approved without asking anyone.
AUTO_APPROVE_LIMIT = 10_000


@app.workflow("expense-approval", trigger="expense/submitted")
def approve_expense(ctx: Context) -> dict[str, Any]:
    expense = ctx.event.data
    employee = expense["employeeId"]
    if expense["amount"] <= AUTO_APPROVE_LIMIT:
        decision: dict[str, Any] = {"approved": True, "by": "policy"}
    else:
        try:
            decision = ctx.step.wait_for_callback(
                "manager-approval",
                lambda callback_id: approvals.request(callback_id, expense),
                timeout="3d",
            )
        except StepError as error:
            # Rejected (the approver failed the callback) or no answer within three days.
            ctx.step.run("notify-refused", mailer.send, employee, "expense-refused")
            return {"status": "refused", "reason": error.error_type, "note": error.error_message}
    payout = ctx.step.run(
        "reimburse",
        payments.charge,
        employee,
        -expense["amount"],
        idempotency_key=f"{ctx.run_id}:reimburse",
    )
    ctx.step.run("notify-approved", mailer.send, employee, "expense-approved")
    return {"status": "reimbursed", "by": decision.get("by"), "payout": payout["id"]}
