"""Nothing is left behind: timers nobody needs, index entries of cancelled runs, and
audit trails that say a cancelled run slept through what it never reached."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from engine.errors import TransientError
from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START


def test_a_wait_resolved_by_its_event_withdraws_its_timeout_timer():
    # GIVEN a run waiting two days for an approval (a Scheduler timer for the timeout)
    app = App("t")

    @app.workflow("approval", trigger="order/placed")
    def flow(ctx: Context) -> str:
        got = ctx.step.wait_for_event("ok", event="order/approved", match="data.id", timeout="2d")
        ctx.step.sleep("cool-off", "1m")
        return "approved" if got else "timed out"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="order/placed", data={"id": 1}))
        assert len(rt.pending_schedules()) == 1
        # WHEN the event comes first
        rt.send(Event(name="order/approved", data={"id": 1}))
        # THEN the timeout's schedule is gone, not left to fire in two days for nothing
        assert rt.run(run_id).status == "SLEEPING"
        assert rt.pending_schedules() == []
        rt.advance(timedelta(minutes=2))
        assert rt.run(run_id).output == "approved"


def test_a_child_that_finishes_before_its_timeout_withdraws_the_timeout_timer():
    app = App("t")

    @app.workflow("child")
    def child(ctx: Context) -> int:
        ctx.step.sleep("think", "1h")
        return 42

    @app.workflow("parent", trigger="go")
    def parent(ctx: Context) -> int:
        return ctx.step.invoke("ask", workflow="child", timeout="1d")  # type: ignore[no-any-return]

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(hours=2))
        assert rt.run(run_id).output == 42
        assert rt.pending_schedules() == []


class _ResolverRacingTheCancel:
    """A store whose first withdrawal of a cancelled run's wait is preceded by a resolver
    settling that wait (the race between `runs cancel` and an event)."""

    def __init__(self, inner: Any, settle: Any) -> None:
        self._inner = inner
        self._settle = settle
        self.raced = False

    def put_step(self, run_id: str, record: Any, *, expected: Any) -> Any:
        if (
            not self.raced
            and record.status.value == "CANCELLED"
            and record.kind.value == ("wait_for_event")
        ):
            self.raced = True
            self._settle()
        return self._inner.put_step(run_id, record, expected=expected)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_wait_resolved_while_its_run_is_cancelled_does_not_stay_in_the_index():
    app = App("t")

    @app.workflow("approval", trigger="order/placed")
    def flow(ctx: Context) -> str:
        got = ctx.step.wait_for_event("ok", event="order/approved", match="data.id", timeout="2d")
        return "approved" if got else "timed out"

    approved = Event(name="order/approved", data={"id": 1}, id="approval-1", ts=START)
    racing: dict[str, _ResolverRacingTheCancel] = {}

    def hook(ports: Any) -> Any:
        store = _ResolverRacingTheCancel(
            ports.store, lambda: rt.services.router.resolve_waits(approved)
        )
        racing["store"] = store
        return replace(ports, store=store)

    with LocalRuntime(app, start=START, ports_hook=hook) as rt:
        [run_id] = rt.send(Event(name="order/placed", data={"id": 1}))
        # WHEN the run is cancelled while the approval resolves its wait
        rt.cancel(run_id)
        assert racing["store"].raced
        # THEN the run is cancelled, and no index entry points at it any more
        assert rt.run(run_id).status == "CANCELLED"
        loaded = rt.services.store.load(run_id)
        assert [step.indexed for step in loaded.steps.values()] == [False]
        key = next(iter(loaded.steps.values())).wait.index_key
        assert rt.services.store.find_waiters(key) == []


def test_a_sleep_a_cancelled_run_never_went_past_is_shown_cancelled_not_completed():
    # GIVEN a run whose wake-up could not be handled (its claim kept failing) past the
    # end of its sleep
    app = App("t")
    broken = {"on": False}

    @app.workflow("napper", trigger="go")
    def flow(ctx: Context) -> str:
        ctx.step.sleep("nap", "1h")
        ctx.step.run("after", lambda: "awake")
        return "done"

    class FailingClaims:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def write_run(self, run: Any, *, expected_version: int) -> None:
            if broken["on"] and run.status.value == "RUNNING":
                raise TransientError("DynamoDB ThrottlingException: try later")
            self._inner.write_run(run, expected_version=expected_version)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    hook = lambda ports: replace(ports, store=FailingClaims(ports.store))  # noqa: E731
    with LocalRuntime(app, start=START, ports_hook=hook) as rt:
        [run_id] = rt.send(Event(name="go"))
        broken["on"] = True
        rt.advance(timedelta(hours=2))
        assert rt.run(run_id).status == "SLEEPING"
        # WHEN it is cancelled
        rt.cancel(run_id)
        # THEN its audit trail says the nap was cut short, not that it was slept through
        [nap] = rt.history(run_id)
        assert (nap.id, nap.status) == ("nap", "CANCELLED")
