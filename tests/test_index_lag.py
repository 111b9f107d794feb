"""Correctness does not depend on an index being up to date.

On AWS a global secondary index lags its table by up to a second or so. A wait and its
event that arrive at the same moment must still meet: the wait writes its entry, looks
back in the event log, and finds nothing (the event is not logged yet); the event is then
logged and looks for waits. If that look went through a lagging index, the wait would
sleep forever. These tests make every index query return nothing (an index that has
caught up with nothing at all) and play that exact interleaving.
"""

from __future__ import annotations

from typing import Any

from infra.local import LocalRuntime
from sdk import App, CancelOn, Context, Event
from tests.conftest import START
from tests.faults import wrap_store


def _lagging_index(rt: LocalRuntime) -> list[str]:
    """Every Query on a secondary index returns no items, as if it had not caught up."""
    seen: list[str] = []

    def note(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["lagging_index"] = params.get("IndexName")

    def lag(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if context.get("lagging_index"):
            seen.append(context["lagging_index"])
            parsed.update(Items=[], Count=0)
            parsed.pop("LastEvaluatedKey", None)

    events = rt.services.clients.dynamodb.meta.events
    events.register("before-parameter-build.dynamodb.Query", note)
    events.register("after-call.dynamodb.Query", lag)
    return seen


def _approvals(match: str | None) -> App:
    app = App("lag")

    @app.workflow("approve", trigger="doc/submitted")
    def approve(ctx: Context) -> Any:
        got = ctx.step.wait_for_event("approval", event="doc/approved", timeout="1d", match=match)
        return got.data["by"] if got else "timed out"

    return app


def _event_right_after_the_lookback(rt_box: list[LocalRuntime], event: Event):
    """When the run's wait has looked back and found nothing, the event arrives and its
    handler runs to the end, before the run goes on."""
    fired: list[int] = []

    def after(name: str, args: tuple, kwargs: dict, result: Any) -> None:
        if name == "events_since" and args[0] == event.name and not fired:
            fired.append(rt_box[0].services.router.resolve_waits(event))

    return wrap_store(after=after), fired


def test_a_wait_registered_as_its_event_arrives_is_resolved_despite_a_lagging_index():
    for match in ("data.doc", None):
        approval = Event(name="doc/approved", data={"doc": "d1", "by": "ann"}, id=f"a-{match}")
        box: list[LocalRuntime] = []
        hook, fired = _event_right_after_the_lookback(box, approval)
        with LocalRuntime(_approvals(match), start=START, ports_hook=hook) as rt:
            box.append(rt)
            index_queries = _lagging_index(rt)
            # WHEN the approval arrives between the wait's look-back and its suspension
            [run_id] = rt.send(Event(name="doc/submitted", data={"doc": "d1"}))
            # THEN the event's handler found the wait, and the run completed with it
            assert fired == [1], f"match={match}: the event resolved {fired} waits"
            assert rt.run(run_id).status == "COMPLETED"
            assert rt.run(run_id).output == "ann"
            # ... and no index was consulted for it at all
            assert index_queries == []


def test_a_cancel_event_as_the_run_starts_cancels_it_despite_a_lagging_index():
    app = App("lag")

    @app.workflow(
        "drip", trigger="user/signed-up", cancel_on=[CancelOn("user/left", match="data.user")]
    )
    def drip(ctx: Context) -> str:
        ctx.step.sleep("a-day", "1d")
        return "sent"

    left = Event(name="user/left", data={"user": "u1"})
    box: list[LocalRuntime] = []
    fired: list[int] = []

    def after(name: str, args: tuple, kwargs: dict, result: Any) -> None:
        # The run is created with its cancel rule and has looked back for cancellers
        # (none yet): now the cancelling event arrives and is handled to the end.
        if name == "events_since" and args[0] == "user/left" and not fired:
            fired.append(box[0].services.router.cancel_matching(left))

    with LocalRuntime(app, start=START, ports_hook=wrap_store(after=after)) as rt:
        box.append(rt)
        index_queries = _lagging_index(rt)
        [run_id] = rt.send(Event(name="user/signed-up", data={"user": "u1"}))
        assert fired == [1]
        assert rt.run(run_id).status == "CANCELLED"
        assert index_queries == []


def test_a_crash_between_a_waits_entry_and_its_step_never_strands_the_wait():
    """An entry is written before its step. A waits handler that dies between the two
    (the entry already says COMPLETED by this event, the step still WAITING) must, when
    the event is delivered again, resolve the step: the entry is a copy, the step decides."""
    from tests.faults import SimulatedCrash

    crashed: list[bool] = []

    def crash_on_the_step_write(params: dict[str, Any], **_: Any) -> None:
        item = params.get("Item", {})
        if (
            not crashed
            and item.get("sk", {}).get("S", "").startswith("STEP#")
            and "ann" in item.get("r", {}).get("S", "")
        ):
            crashed.append(True)
            raise SimulatedCrash("the waits handler dies between the entry and the step")

    with LocalRuntime(_approvals("data.doc"), start=START) as rt:
        [run_id] = rt.send(Event(name="doc/submitted", data={"doc": "d1"}))
        assert rt.run(run_id).status == "WAITING"
        rt.services.clients.dynamodb.meta.events.register(
            "provide-client-params.dynamodb.PutItem", crash_on_the_step_write
        )
        rt.send(Event(name="doc/approved", data={"doc": "d1", "by": "ann"}))
        rt.advance("1m")
        assert crashed and rt.crashed_batches >= 1
        assert rt.run(run_id).status == "COMPLETED"
        assert rt.run(run_id).output == "ann"
