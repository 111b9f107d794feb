"""`ctx.continue_as_new(data)`: a long-lived loop carries its state into a fresh run with
an empty history, instead of growing one history without bound."""

from __future__ import annotations

from datetime import timedelta

import pytest

from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START
from tests.faults import crash_once, wrap_store


def _poller(effects) -> App:
    app = App("t")

    @app.workflow("poller", trigger="poll/start")
    def poll(ctx: Context) -> dict:
        page = int(ctx.event.data.get("page", 0))
        got = ctx.step.run("fetch", lambda: effects.record(f"page {page}") or page * 10)
        ctx.step.sleep("pause", "1h")
        if page < 2:
            ctx.continue_as_new({"page": page + 1, "total": ctx.event.data.get("total", 0) + got})
        return {"pages": page + 1, "total": ctx.event.data.get("total", 0) + got}

    @app.workflow("parent", trigger="parent/start")
    def parent(ctx: Context) -> dict:
        return ctx.step.invoke("all-pages", workflow="poller", data={"page": 0})  # type: ignore[no-any-return]

    return app


def test_a_run_continues_as_new_runs_each_with_a_fresh_history(effects):
    with LocalRuntime(_poller(effects), start=START) as rt:
        # GIVEN a poller that continues as new after each page
        [first] = rt.send(Event(name="poll/start", data={"page": 0}))
        rt.advance(timedelta(hours=4))
        # THEN the first run ended naming its continuation, and the chain carried the state
        chain = [rt.run(first)]
        while chain[-1].continued_as:
            chain.append(rt.run(chain[-1].continued_as))
        assert [run.status for run in chain] == ["COMPLETED"] * 3
        assert chain[-1].output == {"pages": 3, "total": 30}
        assert [run.event.data for run in chain[1:]] == [
            {"page": 1, "total": 0},
            {"page": 2, "total": 10},
        ]
        assert chain[1].continued_from == first
        # Each run's history holds only its own steps, and each page was fetched once.
        assert all(len(rt.history(run.run_id)) == 2 for run in chain)
        assert effects.calls == {"page 0": 1, "page 1": 1, "page 2": 1}


def test_a_parent_invoking_a_run_that_continues_as_new_gets_the_last_runs_output(effects):
    with LocalRuntime(_poller(effects), start=START) as rt:
        [parent] = rt.send(Event(name="parent/start"))
        rt.advance(timedelta(hours=4))
        assert rt.run(parent).output == {"pages": 3, "total": 30}


def test_a_crash_after_starting_the_continuation_starts_it_once(effects):
    crash = crash_once(
        lambda name, args, kwargs: (
            name == "write_run"
            and args[0].status.value == "COMPLETED"
            and args[0].continued_as is not None
        )
    )
    with LocalRuntime(_poller(effects), start=START, ports_hook=wrap_store(before=crash)) as rt:
        rt.send(Event(name="poll/start", data={"page": 0}))
        rt.advance(timedelta(hours=4))
        assert crash.state["fired"]
        runs = rt.runs(workflow="poller")
        assert len(runs) == 3
        assert effects.calls == {"page 0": 1, "page 1": 1, "page 2": 1}


def test_continue_as_new_takes_a_json_object():
    app = App("t")

    @app.workflow("bad", trigger="go")
    def bad(ctx: Context) -> None:
        ctx.continue_as_new({"when": object()})

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        run = rt.run(run_id)
        assert run.status == "FAILED"
        assert "not JSON-serialisable" in run.error.message


def test_continue_as_new_outside_a_run_says_so():
    from sdk import Context as Ctx

    ctx = Ctx(
        step=None,
        event=Event(name="x"),
        run_id="r",
        workflow_id="w",
        logger=None,
        attempt=lambda: 0,
    )  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="only inside a running workflow"):
        ctx.continue_as_new({})
