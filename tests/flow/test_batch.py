"""`batch_events=Batch(max_size, timeout, key, if_)`: events are collected into one run
(`ctx.events`), which starts when the batch is full or `timeout` after its first event."""

from __future__ import annotations

from engine.flow.ports import AddBatchEvent
from infra.local import LocalRuntime
from sdk import App, Batch, Context, Event
from tests.conftest import START
from tests.flow.helpers import crash_once, outcome


def app_with(batch: Batch) -> App:
    app = App("logs")

    @app.workflow("record", trigger="api/call", batch_events=batch)
    def record(ctx: Context) -> dict:
        numbers = [event.data["n"] for event in ctx.events]
        return ctx.step.run("write", lambda: {"numbers": numbers, "first": ctx.event.data["n"]})

    @app.workflow("single", trigger="api/single")
    def single(ctx: Context) -> int:
        return len(ctx.events)

    return app


def call(n: int, **data) -> Event:
    return Event(name="api/call", data={"n": n, **data}, id=f"c{n}")


def outputs(rt: LocalRuntime) -> list:
    """The events each finished batch held (in the order of their first event)."""
    runs = [run for run in rt.runs(workflow="record") if run.output]
    return sorted((run.output["numbers"] for run in runs), key=lambda numbers: numbers[0])


def test_a_full_batch_starts_at_once_and_the_rest_at_its_timeout():
    with LocalRuntime(app_with(Batch(max_size=3, timeout="30s")), start=START) as rt:
        # GIVEN seven events
        first = rt.send(call(1))
        for n in range(2, 8):
            rt.send(call(n))
        # THEN two full batches ran at once, in order; the seventh event waits
        assert outputs(rt) == [[1, 2, 3], [4, 5, 6]]
        [waiting] = [run for run in rt.runs(workflow="record") if run.status == "QUEUED"]
        assert waiting.waiting.startswith("batch: collecting up to 3 events; starts at")
        assert outcome(rt, "c2").skipped[0].reason == (
            f"batched into run {first[0]} (event 2 of at most 3)"
        )
        # WHEN its timeout passes
        rt.advance("30s")
        # THEN it runs alone; ctx.event is the first event of its batch
        assert outputs(rt) == [[1, 2, 3], [4, 5, 6], [7]]
        assert rt.run(first[0]).output["first"] == 1


def test_keys_have_batches_of_their_own_and_if_picks_what_is_batched():
    batch = Batch(max_size=2, timeout="10s", key="event.data.user", if_="event.data.user != 'vip'")
    with LocalRuntime(app_with(batch), start=START) as rt:
        rt.send(call(1, user="a"))
        rt.send(call(2, user="b"))
        rt.send(call(3, user="a"))
        # An event the condition excludes starts a run of its own, at once.
        [vip] = rt.send(call(4, user="vip"))
        assert rt.run(vip).output == {"numbers": [4], "first": 4}
        rt.advance("10s")
        assert outputs(rt) == [[1, 3], [2], [4]]


def test_a_run_that_is_not_batched_sees_its_event_as_ctx_events():
    with LocalRuntime(app_with(Batch(max_size=2, timeout="5s")), start=START) as rt:
        [run_id] = rt.send(Event(name="api/single", id="s1"))
        assert rt.run(run_id).output == 1


def test_redelivered_events_are_batched_once():
    with LocalRuntime(
        app_with(Batch(max_size=3, timeout="5s")), start=START, deliveries_per_message=2
    ) as rt:
        for n in range(1, 5):
            rt.send(call(n))
        rt.advance("5s")
        assert outputs(rt) == [[1, 2, 3], [4]]


def test_a_crash_after_an_event_joined_adds_it_once():
    # GIVEN a trigger handler that dies right after adding an event to a batch
    crash = crash_once(
        "flow",
        lambda name, args, kwargs: (
            name == "commit"
            and any(isinstance(c, AddBatchEvent) and c.position == 2 for c in args[0])
        ),
    )
    with LocalRuntime(
        app_with(Batch(max_size=3, timeout="5s")), start=START, ports_hook=crash
    ) as rt:
        for n in range(1, 4):
            rt.send(call(n))
        assert crash.state["fired"]
        # THEN the redelivered event found it was in: the batch holds each event once
        assert outputs(rt) == [[1, 2, 3]]
