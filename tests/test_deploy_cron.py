"""Cron triggers deployed: template.yaml's CronSchedules custom resource creates, changes
and deletes the stack's recurring schedules with the app, and a tick Scheduler sends
starts one run, however often it is sent.

The stack is the real template created on moto (tests/test_deploy.py's `deploy`); the
custom resource's requests are sent as CloudFormation would (tests/custom_resources.py),
every AWS call of its function audited against its role. Scheduler's part, which moto
never plays, is played here: at a tick, send the schedule's input, with its
`<aws.scheduler.scheduled-time>` filled in, to the schedule's target with its role.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from engine.clock import ManualClock
from infra.custom_resource import answer
from infra.settings import ConfigurationError
from sdk import CRON_EVENT, App, Context, Cron
from tests.iam_audit import allows, trusts
from tests.test_deploy import ACCOUNT, REGION, Lambdas, Stack, deploy, store_of

PARIS = "Europe/Paris"


def version(*crons: tuple[str, Cron]) -> App:
    """A version of the app: each (workflow id, Cron) a workflow returning its tick."""
    app = App("deploy-crons")
    for workflow_id, cron in crons:

        @app.workflow(workflow_id, trigger=cron)
        def ticked(ctx: Context) -> dict[str, Any]:
            return ctx.step.run("note", lambda: dict(ctx.event.data))

    return app


V1 = version(("digest", Cron("0 9 * * MON-FRI", tz=PARIS)), ("poll", Cron("*/30 * * * *")))
V2 = version(
    ("digest", Cron("0 8 * * MON-FRI", tz=PARIS)),
    ("poll", Cron("*/30 * * * *")),
    ("invoice", Cron("0 0 1 * *")),
)


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    with mock_aws():
        yield boto3.Session(region_name=REGION)


@pytest.fixture(scope="module")
def stack(aws: Any) -> Stack:
    """A stack deployed with the app's first version (its tests leave its schedules be)."""
    return deploy(aws, "stepline-cron", {}, app=V1)


def cron_schedules(stack: Stack) -> dict[str, dict[str, Any]]:
    scheduler = stack.client("scheduler")
    group = stack.outputs["ScheduleGroupName"]
    found = {}
    for summary in scheduler.list_schedules(GroupName=group)["Schedules"]:
        if summary["Name"].startswith("cron-"):
            schedule = scheduler.get_schedule(Name=summary["Name"], GroupName=group)
            found[schedule["ScheduleExpression"]] = schedule
    return found


def fire(stack: Stack, schedule: dict[str, Any], at: datetime) -> None:
    """What EventBridge Scheduler does at a tick: assume the target's role (which must
    trust it, for this group) and send the input, with the scheduled time, to the target."""
    target = schedule["Target"]
    assert target["RoleArn"] == stack.outputs["SchedulerRoleArn"]
    group = stack.outputs["ScheduleGroupName"]
    source = {
        "aws:SourceArn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/{group}",
        "aws:SourceAccount": ACCOUNT,
    }
    assert trusts(stack.scheduler_role, "scheduler.amazonaws.com", source)
    assert allows(stack.scheduler_statements, "sqs:SendMessage", target["Arn"])
    body = target["Input"].replace("<aws.scheduler.scheduled-time>", f"{at:%Y-%m-%dT%H:%M:%SZ}")
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName=target["Arn"].rsplit(":", 1)[1])["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=body)


def test_the_stack_creates_a_schedule_per_cron_aimed_at_the_events_queue(stack):
    # GIVEN the stack deployed with an app of two Crons
    schedules = cron_schedules(stack)

    # THEN each is a recurring schedule in the stack's group, in its time zone, sending
    # a tick event with Scheduler's own time to the events queue with the stack's role
    assert set(schedules) == {"cron(0 9 ? * MON-FRI *)", "cron(0,30 * ? * * *)"}
    digest = schedules["cron(0 9 ? * MON-FRI *)"]
    assert digest["ScheduleExpressionTimezone"] == PARIS
    assert digest["State"] == "ENABLED" and digest["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert digest.get("ActionAfterCompletion") in (None, "NONE")
    target = digest["Target"]
    assert target["Arn"] == stack.functions["events"].queue_arn
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 86_400
    envelope = json.loads(target["Input"])
    assert envelope["detail-type"] == CRON_EVENT
    assert envelope["detail"] == {
        "cron": "0 9 * * MON-FRI",
        "tick": "<aws.scheduler.scheduled-time>",
    }
    # A deploy of new code (a new version) or of another app is an Update of the resource.
    assert stack.custom is not None
    created = stack.custom.properties["CronSchedules"]
    assert created["App"] == "workflows:app" and created["CodeVersion"].endswith("-app-sync:1")
    # The function did it with its own role, and needed nothing it lacks.
    assert stack.custom is not None and stack.custom.denials() == []
    [audit] = [a for a in stack.custom.audits if "scheduler:ListSchedules" in dict(a.used)]
    assert {action for action, _ in audit.used} == {
        "scheduler:ListSchedules",
        "scheduler:CreateSchedule",
        "iam:PassRole",
    }


def test_a_tick_sent_by_scheduler_starts_one_run_even_when_sent_again(stack):
    # GIVEN the stack's functions running the app's first version
    tick = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # Monday 09:00 in Paris
    lambdas = Lambdas(stack, ManualClock(tick), app=V1)
    digest = cron_schedules(stack)["cron(0 9 ? * MON-FRI *)"]

    # WHEN Scheduler sends the tick, and sends it again (a retry after throttling)
    fire(stack, digest, tick)
    fire(stack, digest, tick)
    lambdas.drain()

    # THEN one run of the digest started, with the tick as its event, and completed
    [run] = store_of(stack).list_runs(workflow_id="digest")
    assert run.status == "COMPLETED"
    assert run.output == {"cron": "0 9 * * MON-FRI", "tick": "2026-03-02T09:00:00+01:00"}
    assert store_of(stack).list_runs(workflow_id="poll") == []
    assert lambdas.denials() == []


def test_a_deploy_of_new_code_changes_the_schedules_and_deleting_the_stack_removes_them(aws):
    # (a bus of its own: the module's first stack already made the "stepline" bus)
    stack = deploy(aws, "stepline-cron-b", {"EventBusName": "stepline-cron-b"}, app=V1)
    assert stack.custom is not None
    custom = stack.custom
    scheduler, group = stack.client("scheduler"), stack.outputs["ScheduleGroupName"]
    # GIVEN someone disabled the poll schedule by hand
    poll = cron_schedules(stack)["cron(0,30 * ? * * *)"]
    scheduler.update_schedule(
        Name=poll["Name"],
        GroupName=group,
        ScheduleExpression=poll["ScheduleExpression"],
        ScheduleExpressionTimezone=poll["ScheduleExpressionTimezone"],
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=poll["Target"],
        State="DISABLED",
    )

    # WHEN the second version is deployed: new code publishes a new version, so
    # CloudFormation sends the resource an Update
    updated = custom.send("CronSchedules", "Update", app=V2, CodeVersion="arn:...:2")

    # THEN the digest's schedule moved to 08:00, the poll one is enabled again, the
    # invoice one is new: the group holds the new version's schedules
    assert updated["Status"] == "SUCCESS", updated["Reason"]
    assert updated["Data"] == {"Created": "2", "Updated": "1", "Deleted": "1", "Unchanged": "0"}
    schedules = cron_schedules(stack)
    assert set(schedules) == {
        "cron(0 8 ? * MON-FRI *)",
        "cron(0,30 * ? * * *)",
        "cron(0 0 1 * ? *)",
    }
    assert schedules["cron(0,30 * ? * * *)"]["State"] == "ENABLED"
    assert schedules["cron(0 8 ? * MON-FRI *)"]["ScheduleExpressionTimezone"] == PARIS

    # WHEN the stack is deleted
    deleted = custom.send("CronSchedules", "Delete", app=V2)

    # THEN its schedules go with it
    assert deleted["Status"] == "SUCCESS" and deleted["Data"] == {"Deleted": "3"}
    assert cron_schedules(stack) == {}
    assert custom.denials() == []
    used = {action for audit in custom.audits for action, _ in audit.used}
    assert {"scheduler:UpdateSchedule", "scheduler:DeleteSchedule"} <= used


def test_the_resource_fails_a_deploy_whose_app_does_not_load_and_never_blocks_a_delete():
    sent: list[dict[str, Any]] = []

    def respond(url: str, body: bytes) -> None:
        sent.append(json.loads(body))

    def broken() -> dict[str, int]:
        raise ConfigurationError("could not import 'workflows' for app 'workflows:app'")

    request = {
        "ResponseURL": "https://cloudformation-response.example/x",
        "StackId": "stack",
        "RequestId": "1",
        "LogicalResourceId": "CronSchedules",
    }
    answer({**request, "RequestType": "Update"}, apply=broken, remove=broken, respond=respond)
    answer({**request, "RequestType": "Delete"}, apply=broken, remove=broken, respond=respond)
    assert [(body["Status"], body["Reason"]) for body in sent] == [
        ("FAILED", "ConfigurationError: could not import 'workflows' for app 'workflows:app'"),
        (
            "SUCCESS",
            "Delete: could not clean up (ConfigurationError: could not import 'workflows' "
            "for app 'workflows:app'); the schedule group goes with the stack",
        ),
    ]
    assert sent[0]["PhysicalResourceId"] == sent[1]["PhysicalResourceId"]
