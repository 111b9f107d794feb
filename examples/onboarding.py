"""User onboarding (seed 000): welcome, nudge after a day, flag after a week if inactive."""

from __future__ import annotations

from examples.app import app
from examples.services import mailer, users
from sdk import CancelOn, Context


@app.workflow(
    "user-onboarding",
    trigger="user/signup",
    # A deleted user gets no more nudges (seed 002's cancelOn).
    cancel_on=[CancelOn("app/user.deleted", match="data.userId")],
)
def onboarding(ctx: Context) -> dict[str, object]:
    user_id = ctx.event.data["userId"]
    ctx.step.run("send-welcome", mailer.send, user_id, "welcome")

    ctx.step.sleep("wait-24h", "24h")
    user = ctx.step.run("check-activation", users.find, user_id)
    if not user["activated"]:
        ctx.step.run("send-reminder", mailer.send, user_id, "reminder")

    ctx.step.sleep("wait-7d", "7d")
    user_after_week = ctx.step.run("check-week", users.find, user_id)
    flagged = False
    if not user_after_week["activated"]:
        ctx.step.run("flag-inactive", users.flag_for_review, user_id)
        flagged = True
    return {"activated": user_after_week["activated"], "flagged": flagged}
