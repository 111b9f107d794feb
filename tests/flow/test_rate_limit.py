"""`rate_limit=RateLimit(limit, period, key)`: at most `limit` runs per `period` per key,
as a GCRA bucket (bursts of `limit // 10 + 1`); events over it are dropped, and say so."""

from __future__ import annotations

import collections
from datetime import timedelta

from engine.flow.ports import CreateRun
from infra.local import LocalRuntime
from sdk import App, Context, Event, RateLimit
from tests.conftest import START
from tests.flow.helpers import commits, crash_once, outcome


def app_with(limit: RateLimit) -> App:
    app = App("crm")

    @app.workflow("sync", trigger="company/updated", rate_limit=limit)
    def sync(ctx: Context) -> str:
        return ctx.step.run("sync", lambda: ctx.event.data["company"])

    return app


def update(event_id: str, company: str) -> Event:
    return Event(name="company/updated", data={"company": company}, id=event_id)


def test_one_run_per_period_per_key_and_the_excess_is_dropped_with_a_reason():
    with LocalRuntime(
        app_with(RateLimit(limit=1, period="4h", key="event.data.company")), start=START
    ) as rt:
        # GIVEN a run for acme
        [first] = rt.send(update("e1", "acme"))
        # WHEN acme is updated again within the period
        rt.advance("1h")
        assert rt.send(update("e2", "acme")) == []
        # THEN the event started nothing, and its record says why and when the next may
        [entry] = outcome(rt, "e2").skipped
        assert entry.control == "rate_limit"
        assert entry.reason == (
            'rate limited: at most 1 runs per 4h for key event.data.company = "acme"; '
            "the next may start at 2026-03-02 13:00:00"
        )
        # AND other keys have limits of their own
        assert len(rt.send(update("e3", "globex"))) == 1
        # AND once the period has passed, acme runs again
        rt.advance("3h")
        assert len(rt.send(update("e4", "acme"))) == 1
        assert rt.run(first).status == "COMPLETED"


def test_a_steady_stream_is_cut_to_the_limit_per_period():
    # GIVEN 10 per minute (one every 6 s, bursts of 2), and an event every 4 s for 3 minutes
    with LocalRuntime(app_with(RateLimit(limit=10, period="1m")), start=START) as rt:
        for number in range(45):
            rt.send(update(f"e{number}", "acme"))
            rt.advance("4s")
        started = sorted(run.created_at for run in rt.runs(workflow="sync", limit=1000))
        # THEN about 10 a minute start, and no minute-long window holds more than the
        # limit and its burst
        assert 30 <= len(started) <= 32
        window = timedelta(minutes=1)
        assert max(sum(1 for t in started if s <= t < s + window) for s in started) <= 11
        per_minute = collections.Counter(int((t - START).total_seconds() // 60) for t in started)
        assert all(count >= 9 for minute, count in per_minute.items() if minute < 3)


def test_a_redelivered_event_does_not_spend_the_limit_twice():
    with LocalRuntime(
        app_with(RateLimit(limit=1, period="1m")), start=START, deliveries_per_message=2
    ) as rt:
        [run] = rt.send(update("e1", "acme"))
        # The second delivery found the first's record, not an empty bucket.
        assert outcome(rt, "e1").run_ids == (run,)
        assert [s.control for s in outcome(rt, "e1").skipped] == []


def test_a_crash_after_the_limit_was_spent_starts_the_run_on_redelivery():
    crash = crash_once("flow", commits(CreateRun))
    with LocalRuntime(
        app_with(RateLimit(limit=1, period="1m")), start=START, ports_hook=crash
    ) as rt:
        rt.send(update("e1", "acme"))
        assert crash.state["fired"]
        [run] = rt.runs(workflow="sync")
        assert run.status == "COMPLETED"
        assert outcome(rt, "e1").run_ids == (run.run_id,)
