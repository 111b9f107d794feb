"""`debounce=Debounce(period, key, timeout)`: a burst of events for a key starts one run,
`period` after the last of them, with the last event; `timeout` caps the wait."""

from __future__ import annotations

from engine.flow.ports import CreateRun
from infra.local import LocalRuntime
from sdk import App, Context, Debounce, Event
from tests.conftest import START
from tests.flow.helpers import commits, crash_once, outcome


def app_with(debounce: Debounce) -> App:
    app = App("crm")

    @app.workflow("sync-contact", trigger="contact/updated", debounce=debounce)
    def sync(ctx: Context) -> dict:
        return ctx.step.run("sync", lambda: {"version": ctx.event.data["version"]})

    return app


def edit(number: int, contact: str = "c1") -> Event:
    return Event(
        name="contact/updated", data={"contact": contact, "version": number}, id=f"e{number}"
    )


def test_a_burst_starts_one_run_after_the_quiet_period_with_the_last_event():
    debounce = Debounce(period="5m", key="event.data.contact")
    with LocalRuntime(app_with(debounce), start=START) as rt:
        # GIVEN three edits of one contact, two minutes apart
        [run_id] = rt.send(edit(1))
        rt.advance("2m")
        assert rt.send(edit(2)) == []
        rt.advance("2m")
        rt.send(edit(3))
        # THEN nothing has run yet; the run says why, and each later event where it went
        assert rt.run(run_id).status == "QUEUED"
        assert rt.run(run_id).waiting.startswith(
            'debounce: starts 5m after the last event (key event.data.contact = "c1")'
        )
        [entry] = outcome(rt, "e3").skipped
        assert (entry.control, entry.run_id) == ("debounce", run_id)
        assert outcome(rt, "e3").summary() == (
            f"started nothing: sync-contact: debounced into run {run_id}"
        )
        # WHEN five quiet minutes pass after the last edit
        rt.advance("4m59s")
        assert rt.run(run_id).status == "QUEUED"
        rt.advance("1s")
        # THEN one run ran, with the last event
        assert rt.run(run_id).status == "COMPLETED"
        assert rt.run(run_id).output == {"version": 3}
        assert rt.run(run_id).event_id == "e3"
        assert rt.history(run_id)[0].started_at == START.replace(minute=9)
        # AND an edit after that starts a new debounce
        [later] = rt.send(edit(4))
        assert later != run_id


def test_the_timeout_caps_how_long_a_steady_stream_puts_the_run_off():
    debounce = Debounce(period="5m", key="event.data.contact", timeout="10m")
    with LocalRuntime(app_with(debounce), start=START) as rt:
        [run_id] = rt.send(edit(0))
        for number in range(1, 8):
            rt.advance("2m")
            rt.send(edit(number))
        # The run started at the timeout, ten minutes after the first edit, with the
        # latest edit it had by then (the one at 8 minutes: the one at 10 came after it
        # started, and opened the next debounce).
        assert rt.history(run_id)[0].started_at == START.replace(minute=10)
        assert rt.run(run_id).output == {"version": 4}
        assert len(rt.runs(workflow="sync-contact")) == 2


def test_keys_are_debounced_apart():
    with LocalRuntime(app_with(Debounce(period="1m", key="event.data.contact")), start=START) as rt:
        [a] = rt.send(edit(1, "c1"))
        [b] = rt.send(edit(2, "c2"))
        rt.advance("1m")
        assert a != b
        assert rt.run(a).output == {"version": 1} and rt.run(b).output == {"version": 2}


def test_redelivered_events_are_folded_in_once():
    with LocalRuntime(app_with(Debounce(period="1m")), start=START, deliveries_per_message=2) as rt:
        [run_id] = rt.send(edit(1))
        rt.send(edit(2))
        rt.advance("2m")
        assert [run.run_id for run in rt.runs(workflow="sync-contact")] == [run_id]
        assert rt.run(run_id).output == {"version": 2}


def test_a_crash_before_the_timer_was_armed_is_repaired_by_the_redelivery():
    # GIVEN a trigger handler that dies right after creating the debounced run, before
    # arming the timer that starts it
    crash = crash_once("flow", commits(CreateRun))
    with LocalRuntime(app_with(Debounce(period="1m")), start=START, ports_hook=crash) as rt:
        rt.send(edit(1))
        assert crash.state["fired"]
        # WHEN the period passes
        rt.advance("61s")
        # THEN the run started all the same (the redelivery armed its timer), once
        [run] = rt.runs(workflow="sync-contact")
        assert run.status == "COMPLETED" and run.output == {"version": 1}
