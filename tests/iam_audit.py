"""An IAM audit for tests: which permission each AWS call needs, and whether a role has it.

moto does not enforce IAM on DynamoDB, SQS, Scheduler or EventBridge, so
`tests/test_deploy.py` hooks every client a deployed function's code uses, works out
the IAM action and resource ARN each call needs (as AWS authorises it), and evaluates
them against the policies of that function's role as the stack created it. A call the
role does not allow is recorded as a denial, which the test reports.

The evaluator covers what Stepline's policies use: Allow/Deny statements, Action and
Resource lists with `*`/`?` wildcards, and the StringEquals/StringLike/ArnEquals/ArnLike
condition operators. Anything else fails loudly rather than allowing by mistake.
"""

from __future__ import annotations

import ast
import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.settings import queue_arn_from_url

Statement = Mapping[str, Any]
Permission = tuple[str, str, dict[str, str]]  # action, resource ARN, request context

_CONDITION_OPERATORS = {
    "StringEquals": lambda pattern, value: pattern == value,
    "ArnEquals": lambda pattern, value: pattern == value,
    "StringLike": lambda pattern, value: fnmatch.fnmatchcase(value, pattern),
    "ArnLike": lambda pattern, value: fnmatch.fnmatchcase(value, pattern),
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statement_applies(statement: Statement, action: str, resource: str, context: dict) -> bool:
    unsupported = {"NotAction", "NotResource", "NotPrincipal"} & set(statement)
    if unsupported:
        raise AssertionError(f"the IAM audit does not evaluate {sorted(unsupported)}")
    if not any(fnmatch.fnmatch(action.lower(), p.lower()) for p in _as_list(statement["Action"])):
        return False
    # A trust policy has no Resource: the role itself is the resource.
    if not any(fnmatch.fnmatchcase(resource, p) for p in _as_list(statement.get("Resource", "*"))):
        return False
    for operator, tests in statement.get("Condition", {}).items():
        if operator not in _CONDITION_OPERATORS:
            raise AssertionError(f"the IAM audit does not evaluate the {operator} condition")
        for key, patterns in tests.items():
            value = context.get(key)
            if value is None or not any(
                _CONDITION_OPERATORS[operator](p, value) for p in _as_list(patterns)
            ):
                return False
    return True


def allows(
    statements: Iterable[Statement], action: str, resource: str, context: dict | None = None
) -> bool:
    """Whether identity-policy statements allow `action` on `resource` (explicit deny wins)."""
    allowed = False
    for statement in statements:
        if _statement_applies(statement, action, resource, context or {}):
            if statement["Effect"] == "Deny":
                return False
            allowed = True
    return allowed


def trusts(role: Mapping[str, Any], service: str, context: dict[str, str]) -> bool:
    """Whether a role's trust policy lets `service` assume it, in a request with `context`."""
    statements = [
        statement
        for statement in _as_list(role["AssumeRolePolicyDocument"]["Statement"])
        if service in _as_list(statement.get("Principal", {}).get("Service", []))
    ]
    return allows(statements, "sts:AssumeRole", role["Arn"], context)


def role_statements(iam: Any, role_name: str) -> list[Statement]:
    """Every statement of a role's inline and attached managed policies."""
    documents = []
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        documents.append(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
    for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        documents.append(
            iam.get_policy_version(
                PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
            )["PolicyVersion"]["Document"]
        )
    statements: list[Statement] = []
    for document in documents:
        if isinstance(document, str):
            # moto's CloudFormation stores inline policies as a Python repr, not JSON.
            try:
                document = json.loads(document)
            except ValueError:
                document = ast.literal_eval(document)
        statements.extend(_as_list(document["Statement"]))
    return statements


def required_permissions(
    service: str, operation: str, params: Mapping[str, Any], *, region: str, account: str
) -> list[Permission]:
    """The IAM actions and resources AWS checks for one API call."""
    if service == "dynamodb":

        def table(name: str) -> str:
            return f"arn:aws:dynamodb:{region}:{account}:table/{name}"

        if operation in ("BatchWriteItem", "BatchGetItem"):
            return [(f"dynamodb:{operation}", table(name), {}) for name in params["RequestItems"]]
        if operation == "TransactWriteItems":
            # Each part is authorised as its own action; there is no TransactWriteItems action.
            actions = {
                "Put": "PutItem",
                "Update": "UpdateItem",
                "Delete": "DeleteItem",
                "ConditionCheck": "ConditionCheckItem",
            }
            return [
                (f"dynamodb:{actions[kind]}", table(part["TableName"]), {})
                for item in params["TransactItems"]
                for kind, part in item.items()
            ]
        arn = table(params["TableName"])
        if "IndexName" in params:
            arn += f"/index/{params['IndexName']}"
        return [(f"dynamodb:{operation}", arn, {})]
    if service == "sqs":
        action = operation.removesuffix("Batch")
        return [(f"sqs:{action}", queue_arn_from_url(params["QueueUrl"]), {})]
    if service == "scheduler" and operation == "ListSchedules":
        # No resource-level permissions: AWS authorises a listing on "*".
        return [("scheduler:ListSchedules", "*", {})]
    if service == "scheduler":
        group = params.get("GroupName", "default")
        needed = [
            (
                f"scheduler:{operation}",
                f"arn:aws:scheduler:{region}:{account}:schedule/{group}/{params['Name']}",
                {},
            )
        ]
        if operation in ("CreateSchedule", "UpdateSchedule"):
            needed.append(
                (
                    "iam:PassRole",
                    params["Target"]["RoleArn"],
                    {"iam:PassedToService": "scheduler.amazonaws.com"},
                )
            )
        return needed
    if service == "events" and operation == "PutEvents":
        needed = []
        for entry in params["Entries"]:
            bus = entry.get("EventBusName") or "default"
            arn = (
                bus
                if bus.startswith("arn:")
                else f"arn:aws:events:{region}:{account}:event-bus/{bus}"
            )
            needed.append(("events:PutEvents", arn, {}))
        return needed
    if service == "events" and operation == "ListRules":
        # No resource-level permissions: AWS authorises a listing on "*".
        return [("events:ListRules", "*", {})]
    if service == "events" and operation in (
        "PutRule",
        "PutTargets",
        "RemoveTargets",
        "DeleteRule",
    ):
        rule = params.get("Name") or params["Rule"]
        bus = params.get("EventBusName") or "default"
        path = rule if bus == "default" else f"{bus}/{rule}"
        return [(f"events:{operation}", f"arn:aws:events:{region}:{account}:rule/{path}", {})]
    raise AssertionError(f"the IAM audit does not know {service}:{operation}; teach it")


@dataclass
class Audit:
    """Checks each call of hooked clients against one role's statements."""

    role: str
    statements: list[Statement]
    region: str
    account: str
    used: set[tuple[str, str]] = field(default_factory=set)
    denied: list[str] = field(default_factory=list)

    def attach(self, *clients: Any) -> Audit:
        for client in clients:
            client.meta.events.register("before-parameter-build.*.*", self._check)
        return self

    def _check(self, model: Any, params: Mapping[str, Any], **_: Any) -> None:
        service = model.service_model.service_name
        for action, resource, context in required_permissions(
            service, model.name, params, region=self.region, account=self.account
        ):
            self.used.add((action, resource))
            if not allows(self.statements, action, resource, context):
                self.denied.append(f"{self.role}: {action} on {resource}")
