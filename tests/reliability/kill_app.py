"""The workflow the process-kill suite runs in `stepline worker` subprocesses.

Each run mixes what can be interrupted: inline steps, a short sleep, a step that fails
once and is retried after a backoff, and (for some runs) a wait for an event. The wait's
timeout is far beyond the test's own deadline: on a loaded machine the event queue can
fall a minute behind, and the test is about losing nothing, not about timing. Every
step appends a line to a file, so the test can count how often step code ran.

`limited` is the concurrency kill suite's (tests/reliability/test_flow_kills.py): its steps
log their start and end, so the test can count the runs of a key executing at once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sdk import App, Concurrency, Context, Retry, RetryAfterError

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


def timed(run_id: str, key: str, step: str, seconds: float) -> str:
    """A step's work, with its start and end (wall time, and the worker's pid) in a file,
    so the kill suite can see how many runs of a key executed at once."""
    path = Path(os.environ["STEPLINE_TEST_DIR"]) / "slots.log"
    with path.open("a") as log:
        log.write(f"start {run_id} {step} {key} {os.getpid()} {time.time()!r}\n")
    time.sleep(seconds)  # the step's work: a worker executing it holds the key's slot
    with path.open("a") as log:
        log.write(f"end {run_id} {step} {key} {os.getpid()} {time.time()!r}\n")
    return step


@app.workflow(
    "limited",
    trigger="kill/limited",
    concurrency=[Concurrency(limit=2, key="event.data.k")],
)
def limited(ctx: Context) -> dict[str, object]:
    key = str(ctx.event.data["k"])
    ctx.step.run("work", timed, ctx.run_id, key, "work", 0.4)
    ctx.step.sleep("nap", "1s")  # a sleeping run holds no slot
    ctx.step.run("more", timed, ctx.run_id, key, "more", 0.2)
    return {"i": ctx.event.data["i"]}
