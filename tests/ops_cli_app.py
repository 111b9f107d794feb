"""A workflow for the `stepline callbacks` CLI test, served by `stepline dev`."""

from __future__ import annotations

from sdk import App, Context, StepError

app = App("ops-cli-test")


@app.workflow("expense", trigger="test/expense")
def expense(ctx: Context) -> dict:
    cb = ctx.step.create_callback("approval", timeout="1d")
    try:
        return {"decision": cb.result()}
    except StepError as error:
        return {"error": error.error_type, "message": error.error_message}
