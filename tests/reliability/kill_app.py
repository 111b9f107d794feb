"""The workflow the process-kill suite runs in `stepline worker` subprocesses.

Each run mixes what can be interrupted: inline steps, a short sleep, a step that fails
once and is retried after a backoff, and (for some runs) a wait for an event. The wait's
timeout is far beyond the test's own deadline: on a loaded machine the event queue can
fall a minute behind, and the test is about losing nothing, not about timing. Every
step appends a line to a file, so the test can count how often step code ran.
"""

from __future__ import annotations

import os
from pathlib import Path

from sdk import App, Context, Retry, RetryAfterError

app = App("kill-test")


def effect(run_id: str, step: str) -> str:
    with (Path(os.environ["STEPLINE_TEST_DIR"]) / "effects.log").open("a") as log:
        log.write(f"{run_id} {step}\n")
    return step


@app.workflow("mixed", trigger="kill/go", retries=Retry(max_attempts=4, initial_delay="1s"))
def mixed(ctx: Context) -> dict[str, object]:
    number = int(ctx.event.data["i"])
    ctx.step.run("first", effect, ctx.run_id, "first")
    ctx.step.sleep("nap", f"{1 + number % 3}s")

    def flaky() -> str:
        effect(ctx.run_id, "flaky")
        if number % 3 == 0 and ctx.attempt == 0:
            raise RetryAfterError("try again shortly", "1s")
        return "ok"

    ctx.step.run("flaky", flaky)
    approved_by = None
    if number % 4 == 0:
        approval = ctx.step.wait_for_event(
            "approval", event="kill/approve", match="data.i", timeout="10m"
        )
        approved_by = approval.data["by"] if approval else None
    ctx.step.run("last", effect, ctx.run_id, "last")
    return {"i": number, "approved_by": approved_by}
