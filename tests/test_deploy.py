"""template.yaml deployed: the SAM template, translated by samtranslator and created as
a CloudFormation stack on moto, runs real workflows on the resources it created.

No resource is made by hand except what moto's CloudFormation skips (the schedule group,
the table's TTL). moto cannot run a custom resource's function either: the test sends
the CronSchedules resource its Create itself, as CloudFormation would
(tests/custom_resources.py). Each function's settings come from its own environment in the stack,
its handler from its configured Handler, and its messages from the queue its event
source mapping names; every AWS call its code makes is checked against the policies of
its role (see tests/iam_audit.py). The test plays the parts moto cannot: the Lambda
service (receive a batch, invoke the handler with a Lambda-shaped SQS event, delete what
succeeded) and EventBridge Scheduler (send a due schedule's input to its target).
"""

from __future__ import annotations

import importlib
import io
import json
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

from bench.template import load_template
from engine.clock import ManualClock
from engine.ids import run_id_for
from infra.dynamo import DynamoStore
from infra.local.lambda_service import lambda_sqs_event
from infra.resources import TTL_ATTRIBUTE
from infra.settings import Settings
from infra.wiring import Services, build_services, load_app
from sdk import (
    App,
    Batch,
    CancelOn,
    Concurrency,
    Context,
    Debounce,
    Event,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
)
from tests.custom_resources import CustomResources, take_custom_resources
from tests.iam_audit import Audit, allows, role_statements, trusts

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's
STACK = "stepline"
FUNCTIONS = ("events", "engine")
# What template.yaml's CodeUri packages (with requirements.txt); moto runs none of it.
CODE_FOLDERS = ("sdk", "engine", "infra", "handlers", "workflows", "examples")
# What moto's CloudFormation skips with a warning; `deploy` makes the first two itself,
# and moto would not enforce the others (the alias SAM adds beside the version it
# publishes of the app-sync function is named by nothing). Any other skipped type fails
# the deploy.
MOTO_SKIPS = {
    "AWS::Scheduler::ScheduleGroup",
    "AWS::SQS::QueuePolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::Lambda::Alias",
}


def code_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder in CODE_FOLDERS:
            for path in sorted((ROOT / folder).rglob("*.py")):
                archive.write(path, path.relative_to(ROOT).as_posix())
        archive.write(ROOT / "requirements.txt", "requirements.txt")
    return buffer.getvalue()


@dataclass
class Function:
    name: str
    handler: str
    timeout: int
    environment: dict[str, str]
    role_name: str
    statements: list[Any]
    queue_arn: str
    queue_url: str
    batch_size: int


@dataclass
class Stack:
    session: Any
    outputs: dict[str, str]
    functions: dict[str, Function]
    scheduler_role: dict[str, Any]
    scheduler_statements: list[Any]
    translated: dict[str, Any]
    custom: CustomResources | None = None

    def client(self, service: str) -> Any:
        return self.session.client(service)


def deploy(session: Any, name: str, parameters: dict[str, str], *, app: App | None = None) -> Stack:
    """What `sam build && sam deploy` does, on moto: translate, upload the code, create.
    The custom resources load `app` (default: the one STEPLINE_APP names, as in Lambda)."""
    template = load_template()
    s3 = session.client("s3")
    bucket = f"{name}-code"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="code.zip", Body=code_zip())
    template["Globals"]["Function"]["CodeUri"] = f"s3://{bucket}/code.zip"
    translated = transform(template, parameters, ManagedPolicyLoader(session.client("iam")))
    custom = take_custom_resources(translated)
    cloudformation = session.client("cloudformation")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cloudformation.create_stack(
            StackName=name,
            TemplateBody=json.dumps(translated),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
    skipped = {
        match.group(1)
        for warning in caught
        if (
            match := re.search(r"Tried to parse (\S+) but it's not supported", str(warning.message))
        )
    }
    assert skipped <= MOTO_SKIPS, f"moto's CloudFormation skipped {skipped - MOTO_SKIPS}"
    [described] = cloudformation.describe_stacks(StackName=name)["Stacks"]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}

    # Made by hand because moto's CloudFormation skips them.
    session.client("scheduler").create_schedule_group(Name=outputs["ScheduleGroupName"])
    session.client("dynamodb").update_time_to_live(
        TableName=outputs["TableName"],
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )

    lambda_, iam, sqs = session.client("lambda"), session.client("iam"), session.client("sqs")
    mappings = lambda_.list_event_source_mappings()["EventSourceMappings"]
    functions = {}
    for role in FUNCTIONS:
        config = lambda_.get_function_configuration(FunctionName=f"{name}-{role}")
        [mapping] = [m for m in mappings if m["FunctionArn"] == config["FunctionArn"]]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        # This test invokes the handlers itself; moto would try to run them in Docker.
        lambda_.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
        queue_name = mapping["EventSourceArn"].rsplit(":", 1)[1]
        role_name = config["Role"].rsplit("/", 1)[1]
        functions[role] = Function(
            name=config["FunctionName"],
            handler=config["Handler"],
            timeout=config["Timeout"],
            environment=config["Environment"]["Variables"],
            role_name=role_name,
            statements=role_statements(iam, role_name),
            queue_arn=mapping["EventSourceArn"],
            queue_url=sqs.get_queue_url(QueueName=queue_name)["QueueUrl"],
            batch_size=mapping["BatchSize"],
        )
    scheduler_role_name = outputs["SchedulerRoleArn"].rsplit("/", 1)[1]
    stack = Stack(
        session=session,
        outputs=outputs,
        functions=functions,
        scheduler_role=iam.get_role(RoleName=scheduler_role_name)["Role"],
        scheduler_statements=role_statements(iam, scheduler_role_name),
        translated=translated,
        custom=CustomResources(
            session, name, REGION, ACCOUNT, custom, translated, parameters=dict(parameters)
        ),
    )
    for answer in stack.custom.send_all("Create", app=app):
        assert answer["Status"] == "SUCCESS", answer["Reason"]
    return stack


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    with mock_aws():
        yield boto3.Session(region_name=REGION)


@pytest.fixture(scope="module")
def stack(aws: Any) -> Stack:
    """The stack with its default parameters (a bus named "stepline")."""
    return deploy(aws, STACK, {})


@dataclass
class Lambdas:
    """Plays the Lambda service for a deployed stack: event source mappings and runtime.

    Each function gets its own services, built the way the handlers build them on a
    cold start (settings from the function's environment, the app STEPLINE_APP names,
    unless a test passes another), with every client audited against its role.
    """

    stack: Stack
    clock: ManualClock
    app: App | None = None
    services: dict[str, Services] = field(default_factory=dict)
    audits: dict[str, Audit] = field(default_factory=dict)
    pollers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stack.custom is not None:
            # Running an app is deploying it: its EventRules route the names it uses (the
            # stack is shared by this module's tests, each running its own app).
            answer = self.stack.custom.send("EventRules", "Update", app=self.app)
            assert answer["Status"] == "SUCCESS", answer.get("Reason")
        for role, function in self.stack.functions.items():
            settings = Settings.from_env({**function.environment, "AWS_REGION": REGION})
            app = self.app or load_app(settings.app)
            services = build_services(app, settings, clock=self.clock, session=self.stack.session)
            clients = services.clients
            poller = self.stack.client("sqs")  # Lambda polls with the function's role
            self.audits[role] = Audit(role, function.statements, REGION, ACCOUNT).attach(
                clients.dynamodb, clients.sqs, clients.scheduler, clients.events, poller
            )
            self.services[role], self.pollers[role] = services, poller

    def drain(self, max_batches: int = 200) -> int:
        """Deliver every queued message to its function until all four queues are empty."""
        batches = 0
        while True:
            delivered = sum(self._deliver(role) for role in FUNCTIONS)
            if not delivered:
                return batches
            batches += delivered
            assert batches <= max_batches, "the queues never went quiet"

    def _deliver(self, role: str) -> bool:
        function, poller = self.stack.functions[role], self.pollers[role]
        messages = poller.receive_message(
            QueueUrl=function.queue_url,
            MaxNumberOfMessages=function.batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return False
        module, _, attribute = function.handler.rpartition(".")
        handler = getattr(importlib.import_module(module), attribute)
        context = SimpleNamespace(
            function_name=function.name,
            aws_request_id="deploy-test",
            get_remaining_time_in_millis=lambda: function.timeout * 1000,
        )
        event = lambda_sqs_event(messages, queue_arn=function.queue_arn)
        response = handler(event, context, services=self.services[role])
        assert response == {"batchItemFailures": []}, f"{role} failed {response}"
        poller.delete_message_batch(
            QueueUrl=function.queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
        return True

    def fire_due_schedules(self) -> int:
        """What EventBridge Scheduler does at a schedule's time, which moto never does."""
        scheduler, sqs = self.stack.client("scheduler"), self.stack.client("sqs")
        group = self.stack.outputs["ScheduleGroupName"]
        fired = 0
        for summary in scheduler.list_schedules(GroupName=group)["Schedules"]:
            schedule = scheduler.get_schedule(Name=summary["Name"], GroupName=group)
            # Scheduler reads an at() expression in ScheduleExpressionTimezone: UTC.
            due = datetime.strptime(
                schedule["ScheduleExpression"], "at(%Y-%m-%dT%H:%M:%S)"
            ).replace(tzinfo=UTC)
            if due > self.clock.now():
                continue
            target = schedule["Target"]
            # Scheduler assumes the target's role, naming the schedule group as the source,
            # and sends with it: the role must be the stack's, trust this, and allow the send.
            assert target["RoleArn"] == self.stack.outputs["SchedulerRoleArn"]
            source = {
                "aws:SourceArn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/{group}",
                "aws:SourceAccount": ACCOUNT,
            }
            assert trusts(self.stack.scheduler_role, "scheduler.amazonaws.com", source)
            assert allows(self.stack.scheduler_statements, "sqs:SendMessage", target["Arn"])
            queue_name = target["Arn"].rsplit(":", 1)[1]
            sqs.send_message(
                QueueUrl=sqs.get_queue_url(QueueName=queue_name)["QueueUrl"],
                MessageBody=target["Input"],
            )
            scheduler.delete_schedule(Name=summary["Name"], GroupName=group)
            fired += 1
        return fired

    def denials(self) -> list[str]:
        return [denial for audit in self.audits.values() for denial in audit.denied]

    def used(self, role: str) -> set[str]:
        return {action for action, _ in self.audits[role].used}


def put_event(stack: Stack, name: str, data: dict[str, Any]) -> str:
    """What an application does: plain boto3 put_events on the stack's bus."""
    response = stack.client("events").put_events(
        Entries=[
            {
                "Source": "my.app",
                "DetailType": name,
                "Detail": json.dumps(data),
                "EventBusName": stack.outputs["EventBusName"],
            }
        ]
    )
    assert response["FailedEntryCount"] == 0
    return response["Entries"][0]["EventId"]


def store_of(stack: Stack) -> DynamoStore:
    return DynamoStore(stack.client("dynamodb"), stack.outputs["TableName"])


def schedules_in_group(stack: Stack) -> list[dict[str, Any]]:
    scheduler = stack.client("scheduler")
    group = stack.outputs["ScheduleGroupName"]
    return [
        scheduler.get_schedule(Name=s["Name"], GroupName=group)
        for s in scheduler.list_schedules(GroupName=group)["Schedules"]
    ]


def queue_depths(stack: Stack) -> dict[str, int]:
    sqs = stack.client("sqs")
    depths = {}
    for key, url in stack.outputs.items():
        if key.endswith("QueueUrl"):
            attributes = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            depths[key] = sum(int(value) for value in attributes.values())
    return depths


# -- the stack as created ----------------------------------------------------------------


def test_the_stack_is_created_and_its_outputs_are_what_the_functions_use(stack):
    outputs = stack.outputs
    for function in stack.functions.values():
        env = function.environment
        assert env["STEPLINE_TABLE"] == outputs["TableName"]
        assert env["STEPLINE_WORK_QUEUE_URL"] == outputs["WorkQueueUrl"]
        assert env["STEPLINE_WORK_QUEUE_ARN"] == outputs["WorkQueueArn"]
        assert env["STEPLINE_EVENT_BUS"] == outputs["EventBusName"] == "stepline"
        assert env["STEPLINE_SCHEDULE_GROUP"] == outputs["ScheduleGroupName"]
        assert env["STEPLINE_SCHEDULER_ROLE_ARN"] == outputs["SchedulerRoleArn"]
        assert env["STEPLINE_APP"] == "workflows:app"
    assert stack.functions["engine"].queue_url == outputs["WorkQueueUrl"]
    assert stack.functions["events"].queue_url == outputs["EventsQueueUrl"]
    # Each function has a role of its own: the template's, so SAM generated none (it would
    # attach AWSLambdaSQSQueueExecutionRole, whose Resource is "*").
    assert len({f.role_name for f in stack.functions.values()}) == 2
    resources = stack.translated["Resources"]
    roles = {name for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert roles == {
        "EngineRole",
        "EventsRole",
        "SchedulerRole",
        "AppSyncRole",
    }
    # Scheduler, and only for this stack's schedule group in this account, may assume the
    # wake-up role.
    role = stack.scheduler_role
    group = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/{STACK}"
    mine = {"aws:SourceArn": group, "aws:SourceAccount": ACCOUNT}
    assert trusts(role, "scheduler.amazonaws.com", mine)
    assert not trusts(role, "scheduler.amazonaws.com", {**mine, "aws:SourceArn": f"{group}-other"})
    assert not trusts(
        role, "scheduler.amazonaws.com", {**mine, "aws:SourceAccount": "999999999999"}
    )
    assert not trusts(role, "lambda.amazonaws.com", mine)


def test_an_event_the_app_uses_reaches_the_events_queue_once_and_others_never(stack):
    # GIVEN the stack deployed: its EventRules resource made rules of the names the
    # workflows package uses
    lambdas = Lambdas(stack, ManualClock(datetime.now(UTC)))
    rules = stack.client("events").list_rules(EventBusName="stepline", NamePrefix=STACK)["Rules"]
    routed = set().union(*(json.loads(rule["EventPattern"])["detail-type"] for rule in rules))
    assert "app/nothing-listens" not in routed
    # WHEN an event no workflow uses is put on the bus
    put_event(stack, "app/nothing-listens", {"x": 1})
    # THEN it reaches no queue (it costs Stepline nothing)
    assert set(queue_depths(stack).values()) == {0}
    # AND an event the app uses reaches the one events queue, once
    [name] = sorted(routed - {n for n in routed if n.startswith("stepline/")})[:1]
    put_event(stack, name, {"x": 1})
    depths = queue_depths(stack)
    assert depths["EventsQueueUrl"] == 1 and depths["WorkQueueUrl"] == 0
    lambdas.drain()
    assert depths == {**dict.fromkeys(depths, 0), "EventsQueueUrl": 1}
    assert lambdas.denials() == []


# -- runs on the stack -------------------------------------------------------------------


def test_the_readme_first_event_runs_the_shipped_workflows_package_to_completion(stack):
    # The functions load the app their STEPLINE_APP names: workflows:app by default.
    lambdas = Lambdas(stack, ManualClock(datetime.now(UTC)))
    readme = (ROOT / "README.md").read_text()
    [entries] = re.findall(r"aws events put-events --entries '(.*?)'", readme, re.DOTALL)
    response = stack.client("events").put_events(Entries=json.loads(entries))
    assert response["FailedEntryCount"] == 0
    event_id = response["Entries"][0]["EventId"]
    lambdas.drain()
    run = store_of(stack).get_run(run_id_for("hello", event_id))
    assert run is not None and run.status == "COMPLETED"
    assert run.output == {"greeting": "Hello, Ada!", "shout": "HELLO, ADA!"}
    assert lambdas.denials() == []


shop = App("deploy-check")


def reserve(order_id: str) -> dict[str, Any]:
    return {"orderId": order_id, "reserved": True}


@shop.workflow(
    "order",
    trigger="order/placed",
    cancel_on=[CancelOn("order/cancelled", match="data.orderId")],
)
def order(ctx: Context) -> dict[str, Any]:
    order_id = ctx.event.data["orderId"]
    ctx.step.run("reserve", reserve, order_id)
    ctx.step.sleep("cool-off", "2h")  # longer than 15 minutes: a Scheduler schedule
    payment = ctx.step.wait_for_event(
        "payment", event="order/paid", match="data.orderId", timeout="1d"
    )
    if payment is None:
        return {"orderId": order_id, "paid": False}
    receipt = ctx.step.invoke(
        "receipt", workflow="receipt", data={"orderId": order_id, **payment.data}, timeout="1h"
    )
    ctx.step.send_event("announce", Event(name="order/shipped", data={"orderId": order_id}))
    return {"orderId": order_id, "paid": True, "receipt": receipt}


@shop.workflow("receipt")
def receipt(ctx: Context) -> str:
    data = ctx.event.data
    return ctx.step.run("render", lambda: f"{data['orderId']}: {data['amount']} paid")


@shop.workflow("shipping-notice", trigger="order/shipped")
def shipping_notice(ctx: Context) -> str:
    return ctx.step.run("notify", lambda: f"{ctx.event.data['orderId']} is on its way")


def test_a_run_sleeps_on_the_stacks_scheduler_waits_invokes_and_publishes_on_its_bus(stack):
    clock = ManualClock(datetime.now(UTC))
    lambdas = Lambdas(stack, clock, app=shop)
    store = store_of(stack)
    placed = put_event(stack, "order/placed", {"orderId": "o-1"})
    lambdas.drain()
    run_id = run_id_for("order", placed)
    assert store.get_run(run_id).status == "SLEEPING"

    # The two-hour sleep is a one-time schedule in the stack's group, aimed at the work
    # queue with the stack's Scheduler role, deleting itself after it fires.
    [timer] = schedules_in_group(stack)
    assert timer["Target"]["Arn"] == stack.outputs["WorkQueueArn"]
    assert timer["Target"]["RoleArn"] == stack.outputs["SchedulerRoleArn"]
    assert timer["ActionAfterCompletion"] == "DELETE"

    clock.advance(timedelta(hours=2, seconds=1))
    assert lambdas.fire_due_schedules() == 1
    lambdas.drain()
    assert store.get_run(run_id).status == "WAITING"

    put_event(stack, "order/paid", {"orderId": "o-2", "amount": 5})  # another order's
    lambdas.drain()
    assert store.get_run(run_id).status == "WAITING"
    put_event(stack, "order/paid", {"orderId": "o-1", "amount": 42})
    lambdas.drain()

    run = store.get_run(run_id)
    assert run.status == "COMPLETED", run.error
    assert run.output == {"orderId": "o-1", "paid": True, "receipt": "o-1: 42 paid"}
    # step.send_event went out on the stack's bus and its trigger rule started a run.
    [notice] = store.list_runs(workflow_id="shipping-notice")
    assert notice.status == "COMPLETED" and notice.output == "o-1 is on its way"

    assert lambdas.denials() == []
    assert set(queue_depths(stack).values()) == {0}, "a queue or dead-letter queue is not empty"
    # Each function used what its role grants for the reasons the template gives.
    assert {"scheduler:CreateSchedule", "iam:PassRole", "events:PutEvents"} <= lambdas.used(
        "engine"
    )
    assert {"dynamodb:Query", "dynamodb:GetItem", "dynamodb:PutItem"} <= lambdas.used("events")


def test_a_cancelling_event_cancels_the_run_and_withdraws_its_schedule(stack):
    clock = ManualClock(datetime.now(UTC))
    lambdas = Lambdas(stack, clock, app=shop)
    store = store_of(stack)
    before = {s["Name"] for s in schedules_in_group(stack)}
    placed = put_event(stack, "order/placed", {"orderId": "o-3"})
    lambdas.drain()
    run_id = run_id_for("order", placed)
    [timer] = [s for s in schedules_in_group(stack) if s["Name"] not in before]

    put_event(stack, "order/cancelled", {"orderId": "o-3"})
    lambdas.drain()

    run = store.get_run(run_id)
    assert run.status == "CANCELLED"
    assert "order/cancelled" in run.error.message
    assert timer["Name"] not in {s["Name"] for s in schedules_in_group(stack)}
    assert "scheduler:DeleteSchedule" in lambdas.used("events")
    assert lambdas.denials() == []
    assert set(queue_depths(stack).values()) == {0}


# Callback ids the expense workflow handed to "the approver" (another system).
HANDED: list[str] = []


@shop.workflow("expense", trigger="expense/submitted")
def expense(ctx: Context) -> Any:
    return ctx.step.wait_for_callback("approval", HANDED.append, timeout="7d")


def test_a_system_holding_only_a_callback_id_completes_it_with_an_event_on_the_bus(stack):
    # GIVEN a run waiting on a callback whose id was handed to another system
    lambdas = Lambdas(stack, ManualClock(datetime.now(UTC)), app=shop)
    store = store_of(stack)
    submitted = put_event(stack, "expense/submitted", {"amount": 120})
    lambdas.drain()
    run_id = run_id_for("expense", submitted)
    assert store.get_run(run_id).status == "WAITING"
    callback_id = HANDED[-1]
    # WHEN that system puts one event on the stack's bus (it needs events:PutEvents only)
    put_event(
        stack,
        "stepline/callback.completed",
        {"callbackId": callback_id, "result": {"approved": True}},
    )
    lambdas.drain()
    # THEN the events function completed it with its own role, and the run carried on
    run = store.get_run(run_id)
    assert run.status == "COMPLETED", run.error
    assert run.output == {"approved": True}
    # AND a second answer is refused without changing anything or poisoning a queue
    put_event(stack, "stepline/callback.failed", {"callbackId": callback_id, "errorType": "No"})
    lambdas.drain()
    assert store.get_run(run_id).output == {"approved": True}
    assert lambdas.denials() == []
    assert set(queue_depths(stack).values()) == {0}
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"} <= lambdas.used("events")


# -- event names computed at run time -------------------------------------------------------

computing = App("deploy-computed")


@computing.workflow("await-kind", trigger="kind/chosen")
def await_kind(ctx: Context) -> bool:
    # Computed: no deploy could list it; the engine routes it before the wait registers.
    name = "/".join(["kind", ctx.event.data["kind"], "done"])
    return ctx.step.wait_for_event("done", event=name, timeout="1h") is not None


def test_a_wait_on_a_name_computed_at_run_time_is_routed_by_the_engine_on_the_stack(stack):
    clock = ManualClock(datetime.now(UTC))
    lambdas = Lambdas(stack, clock, app=computing)
    store = store_of(stack)
    # GIVEN a run that waits for an event whose name its code computes
    started = put_event(stack, "kind/chosen", {"kind": "gold"})
    lambdas.drain()
    run_id = run_id_for("await-kind", started)
    assert store.get_run(run_id).status == "WAITING"
    # THEN the engine made the name's rule with its own role, on the stack's bus
    rules = stack.client("events").list_rules(EventBusName="stepline", NamePrefix=STACK)
    routed = {
        rule["Name"]: json.loads(rule["EventPattern"])["detail-type"] for rule in rules["Rules"]
    }
    assert [name for name, names in routed.items() if names == ["kind/gold/done"]] == [
        name for name in routed if name.startswith(f"{STACK}-event-")
    ]
    assert {"events:ListRules", "events:PutRule", "events:PutTargets"} <= lambdas.used("engine")
    # AND the event, put on the bus, reaches the events queue and resolves the wait
    put_event(stack, "kind/gold/done", {})
    lambdas.drain()
    assert store.get_run(run_id).output is True
    assert lambdas.denials() == []
    assert set(queue_depths(stack).values()) == {0}


# -- flow control on the stack -------------------------------------------------------------

flowing = App("deploy-flow")


@flowing.workflow(
    "sync-contact",
    trigger="contact/updated",
    # Longer than 15 minutes: the events function arms (and re-arms) Scheduler timers.
    debounce=Debounce(period="20m", key="event.data.contact"),
    timeouts=Timeouts(start="2h"),
)
def sync_contact(ctx: Context) -> int:
    return int(ctx.step.run("push", lambda: ctx.event.data["edit"]))


@flowing.workflow(
    "import",
    trigger="import/requested",
    idempotency="event.data.id",
    rate_limit=RateLimit(limit=100, period="1m", key="event.data.account"),
    singleton=Singleton(key="event.data.account", mode="cancel"),
    concurrency=[Concurrency(limit=1, key="event.data.account")],
    throttle=Throttle(limit=1, period="1h"),
    cancel_on=[CancelOn("import/aborted", match="data.account")],
)
def import_account(ctx: Context) -> str:
    ctx.step.run("fetch", lambda: ctx.event.data["id"])
    ctx.step.wait_for_event("approval", event="import/approved", match="data.account", timeout="1d")
    return str(ctx.event.data["id"])


@flowing.workflow(
    "digest",
    trigger="digest/item",
    batch_events=Batch(max_size=2, timeout="30s"),
    concurrency=[Concurrency(limit=2)],
)
def digest(ctx: Context) -> int:
    return int(ctx.step.run("count", lambda: len(ctx.events)))


def test_flow_controls_run_on_the_stack_with_only_what_the_roles_allow(stack):
    clock = ManualClock(datetime.now(UTC))
    lambdas = Lambdas(stack, clock, app=flowing)
    store = store_of(stack)

    # One event at a time: the events function handles a batch's records in threads,
    # and moto's TransactWriteItems copies the table unguarded (a race of moto's own).
    def send(name: str, data: dict[str, Any]) -> str:
        event_id = put_event(stack, name, data)
        lambdas.drain()
        return event_id

    # A debounced burst: two edits of one contact become one run, with the last edit.
    send("contact/updated", {"contact": "c1", "edit": 1})
    send("contact/updated", {"contact": "c1", "edit": 2})
    # Two imports of one account (the second cancels the first, which waits: singleton),
    # a duplicate by idempotency, and two items of a digest batch.
    first = send("import/requested", {"account": "a", "id": "i1"})
    send("import/requested", {"account": "a", "id": "i1"})
    second = send("import/requested", {"account": "a", "id": "i2"})
    for n in range(2):
        send("digest/item", {"n": n})
    assert store.get_run(run_id_for("import", first)).status == "CANCELLED"
    [batched] = store.list_runs(workflow_id="digest")
    assert batched.status == "COMPLETED" and batched.output == 2

    # The debounce's and the throttle's timers, and the import's sleep, are schedules.
    for _ in range(3):
        clock.advance(timedelta(hours=1, minutes=1))
        lambdas.fire_due_schedules()
        lambdas.drain()
    send("import/approved", {"account": "a"})
    [synced] = store.list_runs(workflow_id="sync-contact")
    assert synced.status == "COMPLETED" and synced.output == 2
    assert store.get_run(run_id_for("import", second)).status == "COMPLETED"

    assert sorted(set(lambdas.denials())) == [], "\n".join(sorted(set(lambdas.denials())))
    assert set(queue_depths(stack).values()) == {0}, "a queue or dead-letter queue is not empty"
    # What flow control adds to each role, used for the reasons the template gives.
    # (The engine's BatchGetItem reads a key's slots when its first choice is taken: a
    # contention these one-at-a-time deliveries never make.)
    assert {"dynamodb:Query", "dynamodb:DeleteItem"} <= lambdas.used("engine")
    assert {
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "scheduler:CreateSchedule",
        "scheduler:DeleteSchedule",
        "iam:PassRole",
    } <= lambdas.used("events")


# -- the roles do not allow more ---------------------------------------------------------


def test_each_functions_role_allows_only_its_own_work(stack):
    fn = stack.functions
    table = stack.outputs["TableArn"]
    group = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{stack.outputs['ScheduleGroupName']}"
    other_table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/someone-else"

    assert allows(fn["engine"].statements, "dynamodb:PutItem", table)
    assert not allows(fn["engine"].statements, "dynamodb:PutItem", other_table)
    assert not allows(fn["engine"].statements, "dynamodb:DeleteTable", table)
    assert not allows(fn["engine"].statements, "scheduler:CreateSchedule", f"{group}-other/x")
    # The engine passes the Scheduler role only to Scheduler.
    passed = stack.outputs["SchedulerRoleArn"]
    assert allows(
        fn["engine"].statements,
        "iam:PassRole",
        passed,
        {"iam:PassedToService": "scheduler.amazonaws.com"},
    )
    assert not allows(
        fn["engine"].statements,
        "iam:PassRole",
        passed,
        {"iam:PassedToService": "lambda.amazonaws.com"},
    )
    assert not allows(
        fn["engine"].statements,
        "events:PutEvents",
        f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default",
    )
    events = fn["events"].statements
    assert not allows(events, "events:PutEvents", stack.outputs["EventBusArn"])
    assert not allows(events, "scheduler:CreateSchedule", f"{group}/x")
    # It consumes its own queue and no other.
    assert allows(events, "sqs:ReceiveMessage", fn["events"].queue_arn)
    assert not allows(events, "sqs:ReceiveMessage", stack.outputs["WorkQueueArn"])
    assert not allows(events, "dynamodb:Query", f"{table}/index/runs")
    # It arms flow-control timers, never a Cron's schedules.
    assert allows(events, "scheduler:CreateSchedule", f"{group}/stepline-x-1")
    assert not allows(events, "scheduler:DeleteSchedule", f"{group}/cron-x")
    # The engine may add a rule of this stack for a name a run computes, no other rule,
    # and never delete one.
    rules = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/stepline"
    assert allows(fn["engine"].statements, "events:PutRule", f"{rules}/{STACK}-event-0123abcd")
    assert not allows(fn["engine"].statements, "events:PutRule", f"{rules}/someone-elses")
    assert not allows(fn["engine"].statements, "events:DeleteRule", f"{rules}/{STACK}-event-0")
    assert not allows(events, "events:PutRule", f"{rules}/{STACK}-event-0123abcd")


# -- parameters --------------------------------------------------------------------------


def test_with_the_default_bus_parameter_the_rules_and_functions_use_the_default_bus(aws):
    other = deploy(aws, "stepline-b", {"EventBusName": "default"})

    assert other.outputs["EventBusName"] == "default"
    assert {f.environment["STEPLINE_EVENT_BUS"] for f in other.functions.values()} == {"default"}
    assert allows(
        other.functions["engine"].statements, "events:PutEvents", other.outputs["EventBusArn"]
    )
    rules = aws.client("events").list_rules(EventBusName="default")["Rules"]
    [rule] = rules
    assert re.fullmatch(r"stepline-b-events-[0-9a-f]{8}-0", rule["Name"])
    # The deploy made them with the function's own role, on the default bus's rule ARNs.
    assert other.custom is not None and other.custom.denials() == []

    lambdas = Lambdas(other, ManualClock(datetime.now(UTC)))
    event_id = aws.client("events").put_events(
        Entries=[
            {"Source": "my.app", "DetailType": "app/hello", "Detail": json.dumps({"name": "Bo"})}
        ]
    )["Entries"][0]["EventId"]  # no EventBusName: the default bus
    lambdas.drain()
    run = store_of(other).get_run(run_id_for("hello", event_id))
    assert run is not None and run.output["greeting"] == "Hello, Bo!"
    assert lambdas.denials() == []
