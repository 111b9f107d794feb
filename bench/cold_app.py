"""The app the cold-start figure deploys: one workflow of one inline step (imports the SDK
alone, as a user's app module does)."""

from __future__ import annotations

from sdk import App, Context

app = App("bench-cold")


@app.workflow("cold", trigger="bench/cold")
def cold(ctx: Context) -> dict[str, object]:
    return ctx.step.run("one", lambda: {"ok": True})
