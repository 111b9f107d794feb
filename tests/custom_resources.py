"""CloudFormation's part for custom resources, which moto's CloudFormation cannot play.

moto would invoke a custom resource's function through Docker and wait for its answer.
So `tests/test_deploy.py` takes the `Custom::` resources out of the translated template
before creating the stack, and `CustomResources` then sends each the requests
CloudFormation would (Create after the stack exists, Update on a deploy of new code,
Delete when the stack goes): the properties resolved against the stack, the function's
configured Handler imported as Lambda would, a `ResponseURL` on a loopback HTTP server
that keeps the answer the function PUTs there. Every AWS call the function makes is
audited against its role, as for the other functions.
"""

from __future__ import annotations

import importlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

from infra.settings import Settings
from infra.wiring import build_services, load_app
from sdk import App
from tests.iam_audit import Audit, role_statements


def take_custom_resources(translated: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Remove the `Custom::` resources from a translated template; returns them."""
    resources = translated["Resources"]
    custom = {name: r for name, r in resources.items() if r["Type"].startswith("Custom::")}
    for name in custom:
        del resources[name]
    return custom


class _Catch(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.bodies.append(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def answered(send: Any) -> dict[str, Any]:
    """Run `send(response_url)` against a loopback server; returns the body PUT there."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Catch)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        send(f"http://127.0.0.1:{server.server_address[1]}/response?signature=x")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    [body] = server.bodies  # type: ignore[attr-defined]
    return body


@dataclass
class CustomResources:
    session: Any
    stack_name: str
    region: str
    account: str
    resources: dict[str, dict[str, Any]]
    #: The translated template the stack was created from.
    template: dict[str, Any]
    #: The stack's parameters as given (the others take their defaults).
    parameters: dict[str, str] = field(default_factory=dict)
    #: The properties each resource was last created or updated with (for OldResourceProperties).
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    audits: list[Audit] = field(default_factory=list)
    #: The physical id each resource answered its Create with (sent with later requests).
    physical: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        """A property as CloudFormation resolves it: a function's Arn, a version's or a
        parameter's Ref.

        (moto's describe_stack_resource breaks on stacks with skipped types, so the
        template itself says where to look.)
        """
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"]
            assert attribute == "Arn", value
            resource = self.template["Resources"][logical]
            if resource["Type"] == "AWS::SQS::Queue":
                name = resource["Properties"]["QueueName"]["Fn::Sub"]
                name = name.replace("${AWS::StackName}", self.stack_name)
                sqs = self.session.client("sqs")
                url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
                return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                    "Attributes"
                ]["QueueArn"]
            return self._function(logical)["FunctionArn"]
        if isinstance(value, dict) and value.get("Fn::If", [None])[0] == "CreateBus":
            # The bus's name: the stack's own bus unless "default".
            bus = self.parameters.get("EventBusName", "stepline")
            return "default" if bus in ("", "default") else bus
        if isinstance(value, dict) and value.get("Ref") in self.template.get("Parameters", {}):
            parameter = self.template["Parameters"][value["Ref"]]
            return self.parameters.get(value["Ref"], parameter.get("Default"))
        if isinstance(value, dict) and "Ref" in value:
            resource = self.template["Resources"][value["Ref"]]
            assert resource["Type"] == "AWS::Lambda::Version", value
            function = self._function(resource["Properties"]["FunctionName"]["Ref"])
            versions = self.session.client("lambda").list_versions_by_function(
                FunctionName=function["FunctionName"]
            )["Versions"]
            return max(versions, key=lambda v: v["Version"] != "$LATEST")["FunctionArn"]
        return value

    def _function(self, logical: str) -> dict[str, Any]:
        name = self.template["Resources"][logical]["Properties"]["FunctionName"]
        if isinstance(name, dict):
            name = name["Fn::Sub"].replace("${AWS::StackName}", self.stack_name)
        return self.session.client("lambda").get_function_configuration(FunctionName=name)

    def send(
        self, logical: str, kind: str, *, app: App | None = None, **changes: Any
    ) -> dict[str, Any]:
        """Send one request as CloudFormation would; returns the function's answer.

        `changes` replace resolved properties (a new CodeVersion: a deploy of new code).
        """
        resource = self.resources[logical]
        properties = {k: self.resolve(v) for k, v in resource["Properties"].items()}
        properties.update(changes)
        function = properties["ServiceToken"].rsplit(":", 1)[1]
        config = self.session.client("lambda").get_function_configuration(FunctionName=function)
        settings = Settings.from_env(
            {**config["Environment"]["Variables"], "AWS_REGION": self.region}
        )
        services = build_services(app or load_app(settings.app), settings, session=self.session)
        role = config["Role"].rsplit("/", 1)[1]
        audit = Audit(
            role, role_statements(self.session.client("iam"), role), self.region, self.account
        )
        clients = services.clients
        audit.attach(clients.dynamodb, clients.sqs, clients.scheduler, clients.events)
        self.audits.append(audit)
        module, _, attribute = config["Handler"].rpartition(".")
        handler = getattr(importlib.import_module(module), attribute)
        stack_id = f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.stack_name}/x"
        event: dict[str, Any] = {
            "RequestType": kind,
            "ServiceToken": properties["ServiceToken"],
            "StackId": stack_id,
            "RequestId": f"{kind}-{len(self.audits)}",
            "LogicalResourceId": logical,
            "ResourceType": resource["Type"],
            "ResourceProperties": properties,
        }
        if kind != "Create":
            event["PhysicalResourceId"] = self.physical[logical]
        if kind == "Update":
            event["OldResourceProperties"] = self.properties.get(logical, {})
        context = SimpleNamespace(
            function_name=function,
            aws_request_id=event["RequestId"],
            get_remaining_time_in_millis=lambda: config["Timeout"] * 1000,
        )

        def invoke(url: str) -> None:
            handler({**event, "ResponseURL": url}, context, services=services)

        body = answered(invoke)
        assert body["RequestId"] == event["RequestId"] and body["StackId"] == stack_id
        if kind == "Create":
            self.physical[logical] = body["PhysicalResourceId"]
        else:  # the same resource: an Update that changed it would be a replacement
            assert body["PhysicalResourceId"] == self.physical[logical]
        if kind != "Delete":
            self.properties[logical] = properties
        return body

    def send_all(self, kind: str, *, app: App | None = None) -> list[dict[str, Any]]:
        return [self.send(logical, kind, app=app) for logical in self.resources]

    def denials(self) -> list[str]:
        return [denial for audit in self.audits for denial in audit.denied]
