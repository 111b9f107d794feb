"""Cron triggers on LocalRuntime: declared and checked at decoration time, fired on the
virtual clock through the same Scheduler schedules a deployment has, one run per tick
however often a tick is delivered, in the cron's time zone across daylight-saving
changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.cron import upcoming_ticks
from infra.cron_schedules import SCHEDULED_TIME, desired_schedules
from infra.local import LocalRuntime
from sdk import CRON_EVENT, App, Context, Cron, Event, Trigger, WorkflowDefinitionError

PARIS = "Europe/Paris"


def cron_app(*crons: Cron | str, workflow: str = "report") -> App:
    app = App("crons")

    @app.workflow(workflow, trigger=list(crons))
    def report(ctx: Context) -> dict[str, Any]:
        return ctx.step.run("report", lambda: {"event": ctx.event.name, **ctx.event.data})

    return app


def ticks_of(rt: LocalRuntime, workflow: str = "report") -> list[str]:
    runs = sorted(rt.runs(workflow=workflow, limit=1000), key=lambda run: run.created_at)
    assert all(run.status == "COMPLETED" for run in runs), [r.error for r in runs]
    return [run.output["tick"] for run in runs]


# -- declaring ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("cron(0 9 * * ? *)", 'This EventBridge expression is Cron("0 9 * * *")'),
        ("cron(0 9 ? * MON-FRI *)", 'Cron("0 9 * * MON-FRI")'),
        ("cron(0 9 ? * 2 *)", "day-of-week numbers (1 = Sunday) differ"),
        ("0 9 * * ? *", "no seconds, no year"),
        ("0 9 * *", "5 fields"),
        ("rate(5 minutes)", "5 fields"),
        ("61 9 * * *", "not a valid cron expression (Bad minute)"),
        ("0 9 31 2 *", "Bad day-of-month"),
        ("0 9 * * FUNDAY", "not a valid cron expression"),
    ],
)
def test_a_cron_that_is_not_standard_5_field_cron_is_refused_when_declared(expression, says):
    with pytest.raises(WorkflowDefinitionError) as raised:
        Cron(expression)
    assert says in str(raised.value)


def test_an_unknown_time_zone_is_refused_when_declared():
    with pytest.raises(WorkflowDefinitionError, match="unknown time zone 'Mars/Olympus'"):
        Cron("0 9 * * *", tz="Mars/Olympus")


@pytest.mark.parametrize("trigger", ["cron(0 9 * * ? *)", "0 9 * * MON", "rate(1 hour)"])
def test_a_schedule_given_as_an_event_name_is_refused_not_taken_as_an_event(trigger):
    app = App("typo")
    with pytest.raises(WorkflowDefinitionError) as raised:

        @app.workflow("daily", trigger=trigger)
        def daily(ctx: Context) -> None: ...

    message = str(raised.value)
    assert "workflow 'daily'" in message and "is a schedule, not an event name" in message
    assert "Cron(" in message
    with pytest.raises(WorkflowDefinitionError, match="is a schedule"):
        Trigger(trigger)


def test_the_cron_event_name_is_not_an_event_trigger_and_a_cron_is_not_listed_twice():
    with pytest.raises(WorkflowDefinitionError, match="is the event of Cron triggers"):
        Trigger(CRON_EVENT)
    with pytest.raises(WorkflowDefinitionError, match="listed twice"):
        cron_app(Cron("0 9 * * *"), Cron("0  9 * * *"))


def test_a_workflow_lists_its_crons_beside_its_event_triggers_and_their_next_ticks():
    app = cron_app(Cron("0 9 * * MON", tz=PARIS), "report/requested", Cron("0 0 1 * *"))
    workflow = app.get("report")
    assert workflow is not None
    assert workflow.crons == (Cron("0 9 * * MON", tz=PARIS), Cron("0 0 1 * *"))
    assert [t.event for t in workflow.triggers] == ["report/requested"]
    listed = upcoming_ticks(app, datetime(2026, 3, 1, tzinfo=UTC), count=2)
    assert [(u.workflow_id, u.cron.expression, u.ticks) for u in listed] == [
        (
            "report",
            "0 9 * * MON",
            (datetime(2026, 3, 2, 8, tzinfo=UTC), datetime(2026, 3, 9, 8, tzinfo=UTC)),
        ),
        (
            "report",
            "0 0 1 * *",
            (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)),
        ),
    ]
    assert Cron("0 9 * * MON", tz=PARIS).describe() == "At 09:00 on Monday (Europe/Paris)"


# -- firing ------------------------------------------------------------------------------


def test_each_tick_starts_one_run_with_the_tick_as_its_event():
    # GIVEN a workflow on a weekday-morning cron
    app = cron_app(Cron("0 9 * * MON-FRI"))
    with LocalRuntime(app, start=datetime(2026, 3, 6, 12, tzinfo=UTC)) as rt:  # a Friday
        # WHEN a week passes
        rt.advance(timedelta(days=7))

        # THEN each weekday's 09:00 started one run, whose event is the tick
        assert ticks_of(rt) == [f"2026-03-{day:02d}T09:00:00+00:00" for day in (9, 10, 11, 12, 13)]
        [first] = [r for r in rt.runs() if r.output["tick"].startswith("2026-03-09")]
        assert first.output == {
            "event": CRON_EVENT,
            "cron": "0 9 * * MON-FRI",
            "tick": "2026-03-09T09:00:00+00:00",
        }
        assert first.created_at == datetime(2026, 3, 9, 9, tzinfo=UTC)


def test_time_moving_in_small_steps_or_one_leap_fires_the_same_ticks_once_each():
    app = cron_app(Cron("*/20 * * * *"))
    start = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
    with LocalRuntime(app, start=start) as leap:
        leap.advance(timedelta(hours=2))
        leaped = ticks_of(leap)
    with LocalRuntime(app, start=start) as steps:
        for _ in range(8):
            steps.advance(timedelta(minutes=15))
            steps.drain()
        stepped = ticks_of(steps)
    assert leaped == stepped
    assert len(leaped) == len(set(leaped)) == 6  # 09:20 ... 11:00


def test_a_tick_delivered_again_starts_no_second_run():
    # GIVEN a tick that has started its run
    app = cron_app(Cron("0 9 * * *"))
    with LocalRuntime(app, start=datetime(2026, 3, 2, 8, 59, tzinfo=UTC)) as rt:
        rt.advance(timedelta(minutes=2))
        [run] = rt.runs()
        [schedule] = desired_schedules(app).values()
        retried = schedule.input().replace(SCHEDULED_TIME, "2026-03-02T09:00:00Z")

        # WHEN Scheduler sends it again (a retry after throttling), twice, and someone
        # puts the same tick on the bus
        for _ in range(2):
            rt.clients.sqs.send_message(QueueUrl=rt.queue_urls["events"], MessageBody=retried)
        rt.drain()
        rt.send(Event(name=CRON_EVENT, data={"cron": "0 9 * * *", "tick": "2026-03-02T09:00Z"}))

        # THEN there is still one run for that tick
        assert [r.run_id for r in rt.runs()] == [run.run_id]


def test_a_tick_that_is_not_due_yet_or_not_a_tick_of_the_cron_starts_nothing():
    app = cron_app(Cron("0 9 * * *"))
    with LocalRuntime(app, start=datetime(2026, 3, 2, 8, tzinfo=UTC)) as rt:
        for tick in ("2026-03-02T09:00:00Z", "2026-03-02T07:30:00Z"):
            rt.send(Event(name=CRON_EVENT, data={"cron": "0 9 * * *", "tick": tick}))
        rt.send(Event(name=CRON_EVENT, data={"cron": "0 10 * * *", "tick": "2026-03-02T07:00Z"}))
        assert rt.runs() == []


def test_a_cron_in_a_time_zone_ticks_at_local_time_summer_and_winter():
    app = cron_app(Cron("0 9 * * *", tz="America/New_York"))
    # US clocks go forward on 2026-03-08.
    with LocalRuntime(app, start=datetime(2026, 3, 6, tzinfo=UTC)) as rt:
        rt.advance(timedelta(days=4))
        runs = sorted(rt.runs(), key=lambda run: run.created_at)
        assert [run.created_at.isoformat() for run in runs] == [
            "2026-03-06T14:00:00+00:00",
            "2026-03-07T14:00:00+00:00",
            "2026-03-08T13:00:00+00:00",
            "2026-03-09T13:00:00+00:00",
        ]
        assert [run.output["tick"] for run in runs][-1] == "2026-03-09T09:00:00-04:00"


def test_across_daylight_saving_changes_a_skipped_time_does_not_tick_and_a_repeated_one_once():
    # Paris: 2026-03-29 02:00 -> 03:00 (02:30 does not exist); 2026-10-25 03:00 -> 02:00
    # (02:30 happens twice). EventBridge Scheduler skips the first and runs the second once.
    app = cron_app(Cron("30 2 * * *", tz=PARIS))
    with LocalRuntime(app, start=datetime(2026, 3, 27, tzinfo=UTC)) as rt:
        rt.advance(timedelta(days=4))
        assert ticks_of(rt) == [
            "2026-03-27T02:30:00+01:00",
            "2026-03-28T02:30:00+01:00",
            "2026-03-30T02:30:00+02:00",
        ]
    with LocalRuntime(app, start=datetime(2026, 10, 23, tzinfo=UTC)) as rt:
        rt.advance(timedelta(days=4))
        assert ticks_of(rt) == [
            "2026-10-23T02:30:00+02:00",
            "2026-10-24T02:30:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-26T02:30:00+01:00",
        ]
        # A delivery at the second 02:30 of that night is the same tick: no second run.
        second = {"cron": "30 2 * * *", "tick": "2026-10-25T01:30:00Z"}
        rt.send(Event(name=CRON_EVENT, data=second))
        assert len(rt.runs()) == 4


def test_a_cron_eventbridge_cannot_say_exactly_fires_only_on_its_own_ticks():
    # GIVEN 09:00 on Mondays that are odd days of the month (both day fields restricted,
    # which EventBridge cannot express: the schedule fires every Monday)
    app = cron_app(Cron("0 9 */2 * MON"))
    with LocalRuntime(app, start=datetime(2026, 3, 1, tzinfo=UTC)) as rt:
        [schedule] = [
            rt.clients.scheduler.get_schedule(Name=name, GroupName=rt.settings.schedule_group)
            for name in rt.pending_schedules()
        ]
        assert schedule["ScheduleExpression"] == "cron(0 9 ? * MON *)"

        # WHEN March passes (Mondays 2, 9, 16, 23, 30)
        rt.advance(timedelta(days=31))

        # THEN only the odd Mondays ran; the others were dropped by the engine
        assert ticks_of(rt) == ["2026-03-09T09:00:00+00:00", "2026-03-23T09:00:00+00:00"]


def test_a_cron_and_an_event_trigger_start_the_same_workflow():
    app = cron_app(Cron("0 12 * * *"), "report/requested")
    with LocalRuntime(app, start=datetime(2026, 3, 2, 11, tzinfo=UTC)) as rt:
        [by_event] = rt.send(Event(name="report/requested", data={"by": "ada"}))
        rt.advance(timedelta(hours=2))
        outputs = {r.run_id: r.output for r in rt.runs()}
        assert outputs.pop(by_event) == {"event": "report/requested", "by": "ada"}
        assert [o["tick"] for o in outputs.values()] == ["2026-03-02T12:00:00+00:00"]


def test_a_deploy_that_changes_a_cron_moves_its_schedule():
    # GIVEN an app ticking hourly
    with LocalRuntime(cron_app(Cron("0 * * * *")), start=datetime(2026, 3, 2, tzinfo=UTC)) as rt:
        rt.advance(timedelta(hours=2))
        [old_schedule] = rt.pending_schedules()

        # WHEN a new version ticks every half hour past the hour instead
        rt.deploy(cron_app(Cron("30 * * * *")))
        rt.advance(timedelta(hours=2))

        # THEN the old schedule is gone, the new one fires, and no tick was lost or doubled
        assert rt.pending_schedules() != [old_schedule] and len(rt.pending_schedules()) == 1
        assert [tick[11:16] for tick in ticks_of(rt)] == [
            "01:00", "02:00", "02:30", "03:30"
        ]  # fmt: skip


def test_a_scheduled_tick_carries_schedulers_own_time_to_the_trigger_queue():
    [schedule] = desired_schedules(cron_app(Cron("15 6 * * *", tz=PARIS))).values()
    envelope = json.loads(schedule.input())
    assert envelope["detail-type"] == CRON_EVENT
    assert envelope["detail"] == {"cron": "15 6 * * *", "tick": SCHEDULED_TIME}
    assert SCHEDULED_TIME in envelope["id"]
