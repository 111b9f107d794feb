"""One source of truth: template.yaml declares the resources infra/resources.py and
infra/settings.py describe, so what runs locally is what deploys.

The template is read as CloudFormation reads it (bench/template.py turns !Ref, !GetAtt
and !Sub into their long forms); the expected shapes are imported, not repeated.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bench.template import load_template
from infra.lambda_functions import EVENT_RULES_TYPE
from infra.resources import (
    EVENT_QUEUES,
    MAX_RECEIVE_COUNT,
    TABLE_DEFINITION,
    TTL_ATTRIBUTE,
    queue_names,
)
from infra.settings import ENVIRONMENT_VARIABLES
from sdk import parse_duration

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE: dict[str, Any] = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
STACK_PREFIX = "${AWS::StackName}"  # names derive from the stack as local ones from the prefix
HANDLERS = {
    "work": "handlers.engine.handler",
    "events": "handlers.events.handler",
    # Not a queue's: CloudFormation calls it (the CronSchedules and EventRules resources).
    "app-sync": "handlers.app_sync.handler",
}

# Statements allowed `Resource: "*"`, as (role, action): why AWS leaves no narrower choice.
# Every other statement names its table, index, queue, bus, schedule group or role.
WILDCARD_RESOURCE_ALLOWED: dict[tuple[str, str], str] = {
    ("AppSyncRole", "scheduler:ListSchedules"): (
        "ListSchedules supports no resource-level permissions; the function lists only its "
        "stack's group (GroupName), and a listing holds schedule names, not their targets"
    ),
    ("AppSyncRole", "events:ListRules"): (
        "ListRules supports no resource-level permissions; the function lists only its "
        "stack's rules (NamePrefix) on its bus"
    ),
    ("EngineRole", "events:ListRules"): (
        "ListRules supports no resource-level permissions; the engine lists only its stack's "
        "rules (NamePrefix), once per process for a wait on a name computed at run time"
    ),
}


def of_type(kind: str) -> dict[str, Any]:
    return {name: r for name, r in RESOURCES.items() if r["Type"] == kind}


def getatt(node: Any) -> str | None:
    """The logical id a `!GetAtt X.Arn` (or `!Ref X`) points at."""
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        return node["Fn::GetAtt"][0]
    if isinstance(node, dict) and "Ref" in node:
        return node["Ref"]
    return None


def queues_by_name() -> dict[str, tuple[str, dict[str, Any]]]:
    """QueueName (with the stack prefix) -> (logical id, properties)."""
    return {
        r["Properties"]["QueueName"]["Fn::Sub"]: (name, r["Properties"])
        for name, r in of_type("AWS::SQS::Queue").items()
    }


def functions() -> dict[str, dict[str, Any]]:
    return of_type("AWS::Serverless::Function")


def function_for(role: str) -> tuple[str, dict[str, Any]]:
    [found] = [
        (n, f) for n, f in functions().items() if f["Properties"]["Handler"] == HANDLERS[role]
    ]
    return found


def consumed_queue(function: dict[str, Any]) -> str:
    [event] = function["Properties"]["Events"].values()
    assert event["Type"] == "SQS"
    return getatt(event["Properties"]["Queue"])


# -- the table ---------------------------------------------------------------------------


def test_the_table_has_the_keys_indexes_and_billing_the_store_uses():
    [table] = of_type("AWS::DynamoDB::Table").values()
    properties = table["Properties"]
    assert properties["KeySchema"] == TABLE_DEFINITION["KeySchema"]
    assert sorted(properties["AttributeDefinitions"], key=str) == sorted(
        TABLE_DEFINITION["AttributeDefinitions"], key=str
    )
    assert properties["GlobalSecondaryIndexes"] == TABLE_DEFINITION["GlobalSecondaryIndexes"]
    assert properties["BillingMode"] == TABLE_DEFINITION["BillingMode"]
    assert properties["TimeToLiveSpecification"] == {
        "AttributeName": TTL_ATTRIBUTE,
        "Enabled": True,
    }
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"]["SSEEnabled"] is True


# -- queues ------------------------------------------------------------------------------


def test_each_queue_role_has_its_queue_and_dead_letter_queue_with_the_local_redrive():
    queues = queues_by_name()
    names = queue_names(STACK_PREFIX).all()
    assert set(queues) == set(names.values()) | {f"{n}-dlq" for n in names.values()}
    for name in names.values():
        _, properties = queues[name]
        dlq_id, dlq = queues[f"{name}-dlq"]
        assert getatt(properties["RedrivePolicy"]["deadLetterTargetArn"]) == dlq_id
        assert properties["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVE_COUNT
        assert "RedrivePolicy" not in dlq
    for _, properties in queues.values():
        assert properties["SqsManagedSseEnabled"] is True


def test_each_queue_feeds_its_handler_and_outlasts_its_timeout_six_times():
    queues = queues_by_name()
    for role, name in queue_names(STACK_PREFIX).all().items():
        queue_id, properties = queues[name]
        _, function = function_for(role)
        assert consumed_queue(function) == queue_id
        timeout = function["Properties"]["Timeout"]
        assert properties["VisibilityTimeout"] >= 6 * timeout
        event = next(iter(function["Properties"]["Events"].values()))["Properties"]
        assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert "Ref" in event["BatchSize"]
        assert "Ref" in event["ScalingConfig"]["MaximumConcurrency"]


def test_the_duration_settings_parse_as_the_engine_reads_them():
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    pattern = re.compile(TEMPLATE["Parameters"]["Lookback"]["AllowedPattern"])
    for text in ("24h", "1h30m", "90s", "1w", TEMPLATE["Parameters"]["Lookback"]["Default"]):
        assert pattern.match(text) and parse_duration(text)
    assert not pattern.match("a day")
    for variable in ("STEPLINE_SUSPEND_MARGIN", "STEPLINE_LEASE"):
        assert parse_duration(env[variable])


def test_a_crashed_invocations_claim_has_expired_before_its_message_comes_back():
    # The holder renews its lease every third of it while it works, so a live holder
    # keeps it however long a step takes; a crashed one stops renewing, and its message
    # comes back only after the queue's visibility timeout, by when the lease is over.
    _, queue = queues_by_name()[queue_names(STACK_PREFIX).work]
    lease = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["STEPLINE_LEASE"]
    seconds = parse_duration(lease).total_seconds()
    assert 30 <= seconds < queue["VisibilityTimeout"]


def test_each_handler_knows_its_queues_visibility_timeout():
    queues = queues_by_name()
    for role, name in queue_names(STACK_PREFIX).all().items():
        _, properties = queues[name]
        _, function = function_for(role)
        variables = environment_of(function)
        assert int(variables["STEPLINE_VISIBILITY_TIMEOUT"]) == properties["VisibilityTimeout"]


# -- EventBridge -------------------------------------------------------------------------


def test_events_reach_one_queue_through_the_rules_the_app_sync_makes_and_no_other_rule():
    # No rule is declared: their patterns list the app's event names, which the EventRules
    # custom resource syncs at each deploy (infra/event_rules.py) onto the events queue.
    assert of_type("AWS::Events::Rule") == {}
    assert EVENT_QUEUES == ("events",)
    queue_id, _ = queues_by_name()[queue_names(STACK_PREFIX).events]
    [rules] = [r for r in RESOURCES.values() if r["Type"] == EVENT_RULES_TYPE]
    assert getatt(rules["Properties"]["EventsQueueArn"]) == queue_id
    assert getatt(rules["Properties"]["ServiceToken"]) == "AppSyncFunction"
    # Only this stack's rules, from this account, may send to the queue.
    [policy] = of_type("AWS::SQS::QueuePolicy").values()
    assert [getatt(q) for q in policy["Properties"]["Queues"]] == [queue_id]
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    source = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::If"]
    assert source[0] == "CreateBus"
    assert [arn["Fn::Sub"] for arn in source[1:]] == [
        "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/${EventBusName}/"
        f"{STACK_PREFIX}-event*",
        f"arn:${{AWS::Partition}}:events:${{AWS::Region}}:${{AWS::AccountId}}:rule/{STACK_PREFIX}-event*",
    ]


# -- functions ---------------------------------------------------------------------------


def environment_of(function: dict[str, Any]) -> dict[str, Any]:
    shared = TEMPLATE["Globals"]["Function"].get("Environment", {}).get("Variables", {})
    own = function["Properties"].get("Environment", {}).get("Variables", {})
    return {**shared, **own}


def test_every_function_sets_exactly_the_variables_the_settings_read():
    assert set(HANDLERS.values()) == {f["Properties"]["Handler"] for f in functions().values()}
    for function in functions().values():
        assert sorted(environment_of(function)) == sorted(ENVIRONMENT_VARIABLES)


def test_the_variables_name_the_stacks_own_resources():
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    [table_id] = of_type("AWS::DynamoDB::Table")
    work_id, _ = queues_by_name()[queue_names(STACK_PREFIX).work]
    [group] = of_type("AWS::Scheduler::ScheduleGroup").values()
    assert getatt(env["STEPLINE_TABLE"]) == table_id
    assert env["STEPLINE_WORK_QUEUE_URL"] == {"Ref": work_id}
    assert env["STEPLINE_WORK_QUEUE_ARN"] == {"Fn::GetAtt": [work_id, "Arn"]}
    assert env["STEPLINE_SCHEDULE_GROUP"] == group["Properties"]["Name"]
    assert env["STEPLINE_SCHEDULER_ROLE_ARN"] == {"Fn::GetAtt": ["SchedulerRole", "Arn"]}
    assert env["STEPLINE_APP"] == {"Ref": "StepLineApp"}
    assert TEMPLATE["Parameters"]["StepLineApp"]["Default"] == "workflows:app"


def test_each_function_has_a_role_of_its_own_so_sam_attaches_no_policy():
    roles = [getatt(f["Properties"]["Role"]) for f in functions().values()]
    assert len(set(roles)) == len(functions())
    for function in functions().values():
        assert "Policies" not in function["Properties"]


def statements() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, role in of_type("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            found.extend((name, s) for s in policy["PolicyDocument"]["Statement"])
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for name, policy in of_type(kind).items():
            found.extend((name, s) for s in policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def test_no_policy_grants_every_resource_unless_aws_requires_it():
    wildcards = []
    for role, statement in statements():
        resources = statement["Resource"]
        for resource in resources if isinstance(resources, list) else [resources]:
            text = resource.get("Fn::Sub", "") if isinstance(resource, dict) else resource
            # "*", or every resource of a service in the account ("arn:...:sqs:REGION:ACCOUNT:*").
            if isinstance(text, str) and (text == "*" or text.endswith(":*")):
                actions = statement["Action"]
                for action in actions if isinstance(actions, list) else [actions]:
                    if (role, action) not in WILDCARD_RESOURCE_ALLOWED:
                        wildcards.append(f"{role}: {action}")
    assert wildcards == []
    assert all(len(why) > 20 for why in WILDCARD_RESOURCE_ALLOWED.values())


def test_every_dead_letter_queue_raises_an_alarm_when_a_message_lands():
    alarmed = {}
    for alarm in of_type("AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        [dimension] = p["Dimensions"]
        alarmed[getatt(dimension["Value"])] = (
            p["Namespace"],
            p["MetricName"],
            p["ComparisonOperator"],
            p["Threshold"],
        )
    queues = queues_by_name()
    dlqs = {queues[f"{n}-dlq"][0] for n in queue_names(STACK_PREFIX).all().values()}
    assert alarmed == dict.fromkeys(
        dlqs, ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "GreaterThanThreshold", 0)
    )


def test_the_outputs_name_the_bus_table_and_queues():
    assert {
        "EventBusName",
        "TableName",
        "WorkQueueUrl",
        "EventsQueueUrl",
    } <= set(TEMPLATE["Outputs"])


# -- parameters --------------------------------------------------------------------------


def evaluate(node: Any, parameters: dict[str, str]) -> Any:
    """CloudFormation's condition functions, for the few this template uses."""
    if isinstance(node, list):
        return [evaluate(item, parameters) for item in node]
    if not isinstance(node, dict):
        return node
    [(function, argument)] = node.items()
    if function == "Ref":
        spec = TEMPLATE["Parameters"][argument]
        value = parameters.get(argument, str(spec.get("Default", "")))
        return value.split(",") if spec["Type"] == "CommaDelimitedList" else value
    if function == "Condition":
        return evaluate(TEMPLATE["Conditions"][argument], parameters)
    values = evaluate(argument, parameters)
    if function == "Fn::Equals":
        return values[0] == values[1]
    if function == "Fn::Not":
        return not values[0]
    if function == "Fn::Or":
        return any(values)
    if function == "Fn::Join":
        return values[0].join(values[1])
    raise AssertionError(f"evaluate() does not know {function}")


@pytest.mark.parametrize(
    ("bus", "created"), [("stepline", True), ("orders", True), ("default", False), ("", False)]
)
def test_the_bus_parameter_names_a_new_bus_or_the_default_one(bus, created):
    assert evaluate({"Condition": "CreateBus"}, {"EventBusName": bus}) is created
    assert RESOURCES["Bus"]["Condition"] == "CreateBus"


@pytest.mark.parametrize(
    ("arns", "attached"), [("", False), ("arn:aws:iam::1:policy/a,arn:aws:iam::1:policy/b", True)]
)
def test_workflow_policies_are_attached_to_the_engine_role_only_when_given(arns, attached):
    assert evaluate({"Condition": "HasWorkflowPolicies"}, {"WorkflowPolicyArns": arns}) is attached
    engine_role = getatt(function_for("work")[1]["Properties"]["Role"])
    for name, role in of_type("AWS::IAM::Role").items():
        managed = role["Properties"].get("ManagedPolicyArns")
        if name == engine_role:
            condition, then, _ = managed["Fn::If"]
            assert (condition, then) == ("HasWorkflowPolicies", {"Ref": "WorkflowPolicyArns"})
        else:
            assert managed is None


# -- packaging ---------------------------------------------------------------------------


def requirement_names(lines: list[str]) -> dict[str, str]:
    specs = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower()
            specs[name] = line.replace(" ", "")
    return specs


def test_the_lambda_requirements_are_the_runtime_dependencies_without_the_cli():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = requirement_names(pyproject["project"]["dependencies"])
    shipped = requirement_names((ROOT / "requirements.txt").read_text().splitlines())
    assert shipped == {
        name: spec for name, spec in runtime.items() if name not in ("typer", "rich")
    }


def test_the_handlers_and_the_workflows_package_import_nothing_the_lambda_lacks():
    code = (
        "import sys, handlers.engine, handlers.events, handlers.app_sync\n"
        "from infra.wiring import load_app\n"
        "load_app('workflows:app')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    imported = set(ast.literal_eval(result.stdout))
    assert not imported & {"moto", "typer", "rich", "time_machine", "pytest", "hypothesis"}


def test_the_local_bus_has_the_name_of_the_stacks_default_bus():
    # What an application sends to (its EventBusName) must not depend on where it runs:
    # a deployed stack by default, `stepline dev`, `stepline worker --create-resources`
    # and LocalRuntime.
    import json

    from infra.local import LocalRuntime
    from infra.settings import Settings
    from sdk import App, Context

    default = TEMPLATE["Parameters"]["EventBusName"]["Default"]
    assert Settings().event_bus == Settings.from_env({}).event_bus == default == "stepline"

    app = App("bus")

    @app.workflow("hello", trigger="app/hello")
    def hello(ctx: Context) -> str:
        return "hi"

    with LocalRuntime(app) as rt:
        assert rt.settings.event_bus == default
        response = rt.clients.events.put_events(
            Entries=[
                {
                    "Source": "my.app",
                    "DetailType": "app/hello",
                    "Detail": json.dumps({}),
                    "EventBusName": default,
                }
            ]
        )
        assert response["FailedEntryCount"] == 0
        rt.drain()
        [run] = rt.runs()
        assert run.status == "COMPLETED"
