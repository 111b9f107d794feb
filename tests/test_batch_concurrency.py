"""A batch's messages for different runs are handled side by side: quick runs never wait
behind a long step of another run in the same batch (head-of-line blocking)."""

from __future__ import annotations

import time

from engine.model import RunStatus
from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START


def test_quick_runs_finish_while_a_long_step_of_the_same_batch_still_works():
    app = App("t")
    quick_ids: list[str] = []
    seen: dict[str, int] = {}
    rt: LocalRuntime

    def long_step() -> int:
        # Works until the other runs of its batch have finished: if they waited behind
        # it, they never would, and the bound below fails the test.
        seen["quick done when long started"] = sum(
            rt.services.store.get_run(r).status is RunStatus.COMPLETED for r in quick_ids
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = sum(
                rt.services.store.get_run(r).status is RunStatus.COMPLETED for r in quick_ids
            )
            if done == len(quick_ids):
                seen["quick done while long worked"] = done
                return done
            time.sleep(0.01)
        return -1

    @app.workflow("long", trigger="go-long")
    def long_flow(ctx: Context) -> int:
        return ctx.step.run("long", long_step)

    @app.workflow("quick", trigger="go-quick")
    def quick_flow(ctx: Context) -> str:
        return ctx.step.run("quick", lambda: "done")

    with LocalRuntime(app, start=START, settings={"batch_concurrency": 10}) as rt:
        lifecycle = rt.services.lifecycle
        # GIVEN one long run and nine quick ones whose start messages share a batch
        long_id = lifecycle.start_run(app.get("long"), Event(name="go-long", id="l"))
        quick_ids.extend(
            lifecycle.start_run(app.get("quick"), Event(name="go-quick", id=f"q{i}"))
            for i in range(9)
        )
        # WHEN the work queue is drained
        rt.drain()
        # THEN the quick runs completed while the long step was still working
        assert seen["quick done when long started"] < 9, "the batch put the long run last"
        assert rt.run(long_id).output == 9, seen
        assert all(rt.run(run_id).status == "COMPLETED" for run_id in quick_ids)
