"""A step cut off by a BaseException fails only that delivery, never the process.

`SystemExit` (a step calling `sys.exit()`), `KeyboardInterrupt`, a cancelled asyncio
task or a crash may end a step before its outcome is recorded. The message comes back
and the step runs again; every other run in the process carries on as if nothing had
happened (the "a step is running" marker is never left behind).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

import pytest

from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START


class Crash(BaseException):
    """The process dies here (as a fault injection would)."""


def _app(interrupt: BaseException, effects) -> App:
    app = App("t")

    def fragile() -> str:
        effects.record("fragile")
        if effects["fragile"] == 1:
            raise interrupt
        return "ok"

    @app.workflow("fragile", trigger="go")
    def flow(ctx: Context) -> str:
        return ctx.step.run("fragile", fragile)

    @app.workflow("bystander", trigger="other")
    def bystander(ctx: Context) -> str:
        ctx.step.run("one", lambda: effects.record("one"))
        return ctx.step.run("two", lambda: "fine")

    return app


@pytest.mark.parametrize(
    "interrupt",
    [Crash(), SystemExit(3), asyncio.CancelledError()],
    ids=["crash", "sys.exit", "cancelled-task"],
)
def test_an_interrupted_step_is_run_again_and_poisons_nothing(interrupt, effects):
    app = _app(interrupt, effects)
    with LocalRuntime(app, start=START) as rt:
        # WHEN a step is cut off by a BaseException on its first attempt
        [run_id] = rt.send(Event(name="go"))
        # THEN its message came back and the step ran again, once
        assert rt.run(run_id).status == "COMPLETED"
        assert effects["fragile"] == 2
        # AND the process still runs every other workflow's steps
        [other] = rt.send(Event(name="other"))
        assert rt.run(other).status == "COMPLETED", rt.run(other).error
        assert rt.run(other).output == "fine"


def test_a_keyboard_interrupt_in_a_step_stops_the_caller_but_not_later_steps(effects):
    app = _app(KeyboardInterrupt(), effects)
    with LocalRuntime(app, start=START) as rt:
        # Ctrl-C reaches whoever drives the runtime, as it should...
        with pytest.raises(KeyboardInterrupt):
            rt.send(Event(name="go"))
        # ...and when they carry on, the interrupted message comes back once its
        # visibility timeout has passed, and it and the others run to the end.
        rt.advance(timedelta(minutes=10))
        [run] = rt.runs(workflow="fragile")
        assert run.status == "COMPLETED"
        [other] = rt.send(Event(name="other"))
        assert rt.run(other).status == "COMPLETED", rt.run(other).error


def test_a_step_that_calls_sys_exit_every_time_dead_letters_only_its_own_message(effects):
    app = App("t")

    @app.workflow("quitter", trigger="go")
    def flow(ctx: Context) -> str:
        return ctx.step.run("quit", sys.exit)

    @app.workflow("worker", trigger="go")
    def fine(ctx: Context) -> str:
        return ctx.step.run("work", lambda: "done")

    with LocalRuntime(app, start=START) as rt:
        run_ids = rt.send(Event(name="go"))
        runs = {rt.run(run_id).workflow_id: rt.run(run_id) for run_id in run_ids}
        assert runs["worker"].status == "COMPLETED"
        assert runs["quitter"].status == "RUNNING"
        assert rt.dead_letter_count("work") == 1
