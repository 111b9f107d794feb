"""The seed-002 campaign: wait up to a day for the profile, follow up if it never comes,
then a drip of tips. Deleting the user cancels the whole run (cancel_on)."""

from __future__ import annotations

from examples.app import app
from examples.services import mailer
from sdk import CancelOn, Context


@app.workflow(
    "signup-campaign",
    trigger="app/user.signup",
    # `match` is the indexed form of the seed's
    # `if: "event.data.userId == async.data.userId"`: a deletion touches only this user's runs.
    cancel_on=[CancelOn("app/user.deleted", match="data.userId")],
)
def campaign(ctx: Context) -> dict[str, object]:
    user_id = ctx.event.data["userId"]
    # Resolved by an app/user.profile.completed event for the same user within 24h;
    # None if the day passes first. `match` indexes the wait by user id.
    profile = ctx.step.wait_for_event(
        "wait-for-profile", event="app/user.profile.completed", match="data.userId", timeout="24h"
    )
    if profile is None:
        ctx.step.run("send-followup", mailer.send, user_id, "complete-your-profile")

    ctx.step.sleep("drip-delay-1", "3d")
    ctx.step.run("send-tips", mailer.send, user_id, "tips")
    ctx.step.sleep("drip-delay-2", "7d")
    ctx.step.run("send-offer", mailer.send, user_id, "offer")
    return {"profile_completed": profile is not None}
