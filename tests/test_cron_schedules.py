"""A Cron as EventBridge Scheduler takes it, and the sync of a group's cron schedules.

EventBridge's cron cannot say everything standard cron can; the schedule it gets must
fire at every tick of the Cron (a superset where it cannot be exact), and exactly at its
ticks where `aws_cron` says it is exact. The sync makes the group's `cron-*` schedules
those of the app, whatever was there, and never touches timers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import islice

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from infra.cron_schedules import (
    AwsCron,
    CronScheduleSync,
    aws_cron,
    desired_schedules,
    standard_cron,
)
from infra.local.cron_pump import CronPump
from sdk import App, Context, Cron

START = datetime(2026, 1, 1, tzinfo=UTC)
TARGET = "arn:aws:sqs:us-east-1:123456789012:stepline-trigger"
ROLE = "arn:aws:iam::123456789012:role/stepline-scheduler"


def field(low: int, high: int, names: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    value = number.map(str) | (st.sampled_from(names) if names else number.map(str))
    step = st.integers(1, max(1, (high - low) // 2))
    term = st.one_of(
        value,
        st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.tuples(number, step).map(lambda a: f"{a[0]}/{a[1]}"),
        step.map(lambda n: f"*/{n}"),
    )
    return st.just("*") | st.lists(term, min_size=1, max_size=3).map(",".join)


DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
expressions = st.tuples(
    field(0, 59),
    field(0, 23),
    field(1, 28) | st.sampled_from(["L", "LW", "29", "*/2"]),
    field(1, 12),
    field(0, 7, DAYS) | st.sampled_from(["5#2", "1L", "MON-FRI"]),
).map(" ".join)


def ticks(cron: Cron, count: int) -> list[datetime]:
    return list(islice(cron.ticks(START), count))


@settings(max_examples=80, deadline=None)
@given(expressions, st.sampled_from(["UTC", "Europe/Paris", "America/New_York"]))
def test_the_schedule_fires_at_every_tick_of_the_cron_and_only_those_when_exact(text, tz):
    cron = Cron(text, tz)
    scheduled = aws_cron(cron)
    fired = Cron(standard_cron(scheduled.expression), tz)
    own = ticks(cron, 40)
    # Every tick of the Cron is one the schedule fires (however far apart they are)...
    assert all(fired.tick_of(tick) == tick for tick in own), scheduled
    horizon = own[-1] if own else START + timedelta(days=400)
    fired_ticks = [t for t in ticks(fired, 200) if t <= horizon]
    if scheduled.exact:  # ...and nothing else when the conversion is exact
        assert fired_ticks == own[: len(fired_ticks)], scheduled
    for tick in fired_ticks:  # the engine keeps exactly the Cron's own ticks
        assert (cron.tick_of(tick) is not None) == (tick in own)


@pytest.mark.parametrize(
    ("expression", "scheduled", "exact"),
    [
        ("0 9 * * *", "cron(0 9 ? * * *)", True),
        ("*/15 8-17 * * MON-FRI", "cron(0,15,30,45 8-17 ? * MON-FRI *)", True),
        ("0 0 1,15 * *", "cron(0 0 1,15 * ? *)", True),
        ("0 0 L * *", "cron(0 0 L * ? *)", True),
        ("0 10 * * 5#3", "cron(0 10 ? * 6#3 *)", True),  # EventBridge: 6 is Friday
        ("0 0 * * 0,7", "cron(0 0 ? * SUN *)", True),
        ("0 9 1 * MON", "cron(0 9 * * ? *)", False),  # day 1 or a Monday: every day
        ("0 9 */2 * MON", "cron(0 9 ? * MON *)", False),  # odd days and Mondays
    ],
)
def test_eventbridge_expressions_for_standard_cron(expression, scheduled, exact):
    assert aws_cron(Cron(expression)) == AwsCron(scheduled, exact)


def crons_app(*crons: Cron) -> App:
    app = App("sync")
    for index, cron in enumerate(crons):

        @app.workflow(f"w{index}", trigger=cron)
        def workflow(ctx: Context) -> None: ...

    return app


@pytest.fixture
def scheduler():
    with mock_aws():
        client = boto3.client("scheduler", region_name="us-east-1")
        client.create_schedule_group(Name="stack")
        yield client


def group_state(client) -> dict[str, tuple[str, str, str]]:
    state = {}
    for summary in client.list_schedules(GroupName="stack")["Schedules"]:
        s = client.get_schedule(Name=summary["Name"], GroupName="stack")
        state[s["Name"]] = (s["ScheduleExpression"], s["ScheduleExpressionTimezone"], s["State"])
    return state


def test_the_sync_creates_updates_and_deletes_cron_schedules_and_leaves_timers_alone(scheduler):
    sync = CronScheduleSync(scheduler, group="stack", target_arn=TARGET, role_arn=ROLE)
    scheduler.create_schedule(
        Name="stepline-timer-1",
        GroupName="stack",
        ScheduleExpression="at(2030-01-01T00:00:00)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": TARGET, "RoleArn": ROLE, "Input": "{}"},
    )
    # GIVEN two workflows on one cron and one on another: two schedules
    first = crons_app(Cron("0 9 * * *"), Cron("0 9 * * *"), Cron("0 * * * *", "Asia/Tokyo"))
    report = sync.sync(first)
    assert len(report.created) == 2 and not report.deleted
    specs = desired_schedules(first)
    assert {n: s[:2] for n, s in group_state(scheduler).items() if n.startswith("cron-")} == {
        name: (spec.aws.expression, spec.cron.tz) for name, spec in specs.items()
    }
    # ... and syncing again changes nothing
    assert sync.sync(first).unchanged == report.created

    # WHEN someone disables one, and a new version drops the hourly cron and adds another
    daily = next(n for n, s in specs.items() if s.cron.expression == "0 9 * * *")
    current = scheduler.get_schedule(Name=daily, GroupName="stack")
    scheduler.update_schedule(
        Name=daily,
        GroupName="stack",
        ScheduleExpression=current["ScheduleExpression"],
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=current["Target"],
        State="DISABLED",
    )
    second = crons_app(Cron("0 9 * * *"), Cron("30 18 * * FRI", "Europe/Paris"))
    report = sync.sync(second)

    # THEN the group holds exactly the new app's schedules, enabled, and the timer
    assert report.updated == (daily,) and len(report.created) == len(report.deleted) == 1
    state = group_state(scheduler)
    assert state.pop("stepline-timer-1")[0] == "at(2030-01-01T00:00:00)"
    assert sorted(state.values()) == [
        ("cron(0 9 ? * * *)", "UTC", "ENABLED"),
        ("cron(30 18 ? * FRI *)", "Europe/Paris", "ENABLED"),
    ]

    # AND deleting them all (the stack goes) leaves the timer
    assert len(sync.delete_all().deleted) == 2
    assert list(group_state(scheduler)) == ["stepline-timer-1"]


def test_the_local_pump_sends_each_tick_once_and_skips_what_it_was_too_late_for(scheduler):
    # GIVEN the schedule of a per-minute cron, and a pump that started at 09:00
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="trigger")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sync = CronScheduleSync(scheduler, group="stack", target_arn=arn, role_arn=ROLE)
    sync.sync(crons_app(Cron("* * * * *")))
    nine = datetime(2026, 3, 2, 9, tzinfo=UTC)
    pump = CronPump(
        scheduler, sqs, group="stack", queue_url_of={arn: url}, max_late=timedelta(minutes=5)
    )
    pump.refresh(nine)

    # WHEN it next looks at 09:10 (a laptop asleep), then at 09:10 again and at 09:11
    fired = [pump.fire_due(nine + timedelta(minutes=m)) for m in (10, 10, 11)]

    # THEN it sent the ticks of the last 5 minutes once each, then the next one
    assert fired == [6, 0, 1]
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            bodies.append(json.loads(message["Body"])["detail"]["tick"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert sorted(bodies) == [f"2026-03-02T09:{m:02d}:00Z" for m in range(5, 12)]
