"""Errors classified by type, and what a permanent one makes happen (issue 10, item 12).

Each adapter maps AWS error codes to the engine's contract (engine/errors.py): retrying
may fix a `TransientError`; it will not fix a `PermanentError` (item too large, missing
resource, access denied, invalid request), which the handlers log as permanent with
what to do, and which never fails a run for an operator's mistake.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import typer
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError
from botocore.stub import Stubber

from engine.clock import ManualClock
from engine.errors import (
    AccessDeniedError,
    InvalidRequestError,
    ItemTooLargeError,
    PermanentError,
    ResourceMissingError,
    TransientError,
    UnreachableError,
)
from engine.model import WorkMessage
from infra.dynamo import DynamoStore
from infra.eventbridge import EventBridgeBus
from infra.local import LocalRuntime
from infra.local.cli.common import Exit, errors
from infra.sqs import SqsWorkQueue
from infra.timers import SqsSchedulerTimers
from sdk import App, Context, Event
from tests.conftest import START

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/stepline-work"
NO_RETRIES = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1)


def client(service: str, **kwargs):
    return boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=NO_RETRIES,
        **kwargs,
    )


def stubbed(service: str, operation: str, code: str, status: int = 400, message: str = "m"):
    aws = client(service)
    stubber = Stubber(aws)
    stubber.add_client_error(
        operation, service_error_code=code, service_message=message, http_status_code=status
    )
    stubber.activate()
    return aws


def dynamo_call(aws):
    return DynamoStore(aws, "stepline").get_run("r1")


def sqs_call(aws):
    SqsWorkQueue(aws, QUEUE_URL).enqueue(WorkMessage(run_id="r1", reason="start"))


def scheduler_call(aws):
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    timers = SqsSchedulerTimers(
        sqs=client("sqs"),
        scheduler=aws,
        queue_url=QUEUE_URL,
        queue_arn="arn:aws:sqs:us-east-1:123456789012:stepline-work",
        group="stepline",
        role_arn="arn:aws:iam::123456789012:role/scheduler",
        clock=clock,
    )
    timers.arm("r1", clock.now() + timedelta(days=1))


def events_call(aws):
    EventBridgeBus(aws, bus="stepline", source="app").publish([Event(name="x", data={})])


CASES = [
    ("dynamodb", "get_item", dynamo_call, "ResourceNotFoundException", 400, ResourceMissingError),
    ("dynamodb", "get_item", dynamo_call, "AccessDeniedException", 400, AccessDeniedError),
    ("dynamodb", "get_item", dynamo_call, "UnrecognizedClientException", 400, AccessDeniedError),
    ("dynamodb", "get_item", dynamo_call, "ValidationException", 400, InvalidRequestError),
    ("dynamodb", "get_item", dynamo_call, "ThrottlingException", 400, TransientError),
    ("dynamodb", "get_item", dynamo_call, "InternalServerError", 500, TransientError),
    (
        "sqs",
        "send_message",
        sqs_call,
        "AWS.SimpleQueueService.NonExistentQueue",
        400,
        ResourceMissingError,
    ),
    ("sqs", "send_message", sqs_call, "AccessDenied", 403, AccessDeniedError),
    ("sqs", "send_message", sqs_call, "KMS.AccessDeniedException", 400, AccessDeniedError),
    ("sqs", "send_message", sqs_call, "InvalidParameterValue", 400, InvalidRequestError),
    ("sqs", "send_message", sqs_call, "RequestThrottled", 403, TransientError),
    ("sqs", "send_message", sqs_call, "InternalError", 500, TransientError),
    (
        "scheduler",
        "create_schedule",
        scheduler_call,
        "ResourceNotFoundException",
        404,
        ResourceMissingError,
    ),
    (
        "scheduler",
        "create_schedule",
        scheduler_call,
        "AccessDeniedException",
        403,
        AccessDeniedError,
    ),
    (
        "scheduler",
        "create_schedule",
        scheduler_call,
        "ValidationException",
        400,
        InvalidRequestError,
    ),
    ("scheduler", "create_schedule", scheduler_call, "ThrottlingException", 429, TransientError),
    ("events", "put_events", events_call, "ResourceNotFoundException", 400, ResourceMissingError),
    ("events", "put_events", events_call, "AccessDeniedException", 400, AccessDeniedError),
    ("events", "put_events", events_call, "ThrottlingException", 400, TransientError),
]


@pytest.mark.parametrize(("service", "operation", "call", "code", "status", "expected"), CASES)
def test_adapters_map_aws_error_codes_to_the_contracts_types(
    service, operation, call, code, status, expected
):
    aws = stubbed(service, operation, code, status)
    with pytest.raises(expected) as raised:
        call(aws)
    if not issubclass(expected, PermanentError):
        assert not isinstance(raised.value, PermanentError)


def test_dynamodb_item_size_refusals_are_item_too_large():
    aws = stubbed(
        "dynamodb",
        "put_item",
        "ValidationException",
        message="Item size has exceeded the maximum allowed size",
    )
    from engine.model import StepKind, StepRecord, StepStatus

    record = StepRecord(key="00000", id="s", kind=StepKind.RUN, status=StepStatus.COMPLETED)
    with pytest.raises(ItemTooLargeError):
        DynamoStore(aws, "stepline").put_step("r1", record, expected=None)


def test_a_schedule_that_already_exists_is_not_an_error():
    scheduler_call(stubbed("scheduler", "create_schedule", "ConflictException", 409))


def test_eventbridge_entries_refused_for_good_are_not_retried():
    aws = client("events")
    stubber = Stubber(aws)
    stubber.add_response(
        "put_events",
        {
            "FailedEntryCount": 1,
            "Entries": [{"ErrorCode": "NotAuthorizedForSourceException", "ErrorMessage": "no"}],
        },
    )
    stubber.activate()
    with pytest.raises(AccessDeniedError):
        events_call(aws)
    stubber.assert_no_pending_responses()


def _connect_timeout(**_):
    raise ConnectTimeoutError(endpoint_url="https://sqs.us-east-1.amazonaws.com/")


@pytest.mark.parametrize("service", ["sqs", "dynamodb", "events", "scheduler"])
def test_an_endpoint_that_cannot_be_connected_to_is_unreachable(service):
    aws = client(service)
    aws.meta.events.register("before-send", _connect_timeout)
    call = {
        "sqs": sqs_call,
        "dynamodb": dynamo_call,
        "events": events_call,
        "scheduler": scheduler_call,
    }[service]
    with pytest.raises(UnreachableError):
        call(aws)


def _exit_code(function) -> int:
    with pytest.raises(typer.Exit) as raised:
        errors(function)()
    return raised.value.exit_code


def test_the_cli_tells_unreachable_from_refused_by_type_not_by_text():
    timed_out = client("sqs")
    timed_out.meta.events.register("before-send", _connect_timeout)
    assert _exit_code(lambda: sqs_call(timed_out)) == Exit.UNREACHABLE
    missing = stubbed("sqs", "send_message", "AWS.SimpleQueueService.NonExistentQueue")
    assert _exit_code(lambda: sqs_call(missing)) == Exit.CONFIG
    throttled = stubbed("sqs", "send_message", "RequestThrottled", 403)
    assert _exit_code(lambda: sqs_call(throttled)) == Exit.REFUSED


# -- through the real handlers ---------------------------------------------------------------


def simple_app(effects: list[str]) -> App:
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> str:
        effects.append("ran")
        return ctx.step.run("work", lambda: "done")

    return app


def test_a_missing_table_is_logged_as_permanent_with_what_to_do(caplog):
    with LocalRuntime(simple_app([]), start=START) as rt, caplog.at_level(logging.WARNING):
        rt.clients.dynamodb.delete_table(TableName=rt.settings.table)
        rt.clients.events.put_events(
            Entries=[
                {
                    "Source": "a",
                    "DetailType": "go",
                    "Detail": "{}",
                    "EventBusName": rt.settings.event_bus,
                }
            ]
        )
        rt.drain()
        assert rt.dead_letter_count("events") == 1
    failures = [r.getMessage() for r in caplog.records if "events queue" in r.getMessage()]
    assert failures
    for line in failures:
        assert "will be retried" not in line
        assert "failed permanently" in line
        assert "does not exist" in line and "STEPLINE_TABLE" in line
        assert "redrive" in line


def test_access_denied_while_recording_a_step_fails_the_message_not_the_run(caplog):
    effects: list[str] = []
    denied = {"on": True}

    def deny_step_writes(params, **_):
        if denied["on"] and params["Item"]["sk"]["S"].startswith("STEP#"):
            raise ClientError(
                {
                    "Error": {
                        "Code": "AccessDeniedException",
                        "Message": "User: arn:aws:sts::123456789012:assumed-role/engine is not "
                        "authorized to perform: dynamodb:PutItem",
                    },
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "PutItem",
            )

    with LocalRuntime(simple_app(effects), start=START) as rt, caplog.at_level(logging.WARNING):
        rt.services.clients.dynamodb.meta.events.register(
            "before-parameter-build.dynamodb.PutItem", deny_step_writes
        )
        [run_id] = rt.send(Event(name="go", data={}))
        assert rt.run(run_id).status != "FAILED"
        assert rt.dead_letter_count("work") == 1
        lines = [r.getMessage() for r in caplog.records if "work queue" in r.getMessage()]
        assert lines and all("failed permanently (AccessDeniedError)" in line for line in lines)
        assert all("grant" in line and "redrive" in line for line in lines)
        assert not any("will be retried" in line for line in lines)

        # Fix the permission, then redrive the dead-letter queue (after the lease of the
        # last attempt has run out).
        denied["on"] = False
        rt.advance(timedelta(minutes=16))
        sqs = rt.clients.sqs
        for message in sqs.receive_message(QueueUrl=rt.dlq_urls["work"], MaxNumberOfMessages=10)[
            "Messages"
        ]:
            sqs.send_message(QueueUrl=rt.queue_urls["work"], MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=rt.dlq_urls["work"], ReceiptHandle=message["ReceiptHandle"])
        rt.drain()
        assert rt.run(run_id).status == "COMPLETED"
        assert rt.run(run_id).output == "done"
