"""The `stepline dev` / `stepline worker` pump fires the app's Cron ticks on its clock:
each tick once, from when the pump starts, with the tick in the message (a virtual
clock stands in for the wall clock: nothing here sleeps)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from engine.clock import ManualClock
from infra.clients import Clients
from infra.local.worker import QueueSet, Worker
from infra.resources import create_resources, sync_with_app
from infra.settings import Settings
from infra.wiring import build_services
from sdk import App, Context, Cron

REGION = "us-east-1"
APP = App("pumped")


@APP.workflow("hourly", trigger=Cron("0 * * * *", tz="Asia/Kolkata"))  # at :30 in UTC
def hourly(ctx: Context) -> None: ...


@pytest.fixture
def worker() -> Iterator[tuple[Worker, ManualClock, Any]]:
    with mock_aws():
        session = boto3.session.Session(
            region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        created = create_resources(Clients(Settings(region=REGION), session), "pump")
        settings = created.settings.model_copy(update={"region": REGION})
        clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
        services = build_services(APP, settings, clock=clock, clients=Clients(settings, session))
        sync_with_app(services.clients, services.settings, services.app)  # as `stepline dev` does
        queues = QueueSet.discover(services.clients.sqs, created.queue_urls)
        yield Worker(services, queues, fire_schedules=True), clock, created.queue_urls


def ticks_sent(sqs: Any, url: str) -> list[str]:
    found = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            found.append(json.loads(message["Body"])["detail"]["tick"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return sorted(found)


def test_the_worker_pump_sends_each_tick_of_the_apps_cron_once_to_the_trigger_queue(worker):
    pump, clock, urls = worker
    sqs = pump.services.clients.sqs

    # GIVEN the pump started at 09:00 UTC: nothing is due before 09:30 (15:00 in Kolkata)
    assert pump.fire_due() == 0
    clock.set(datetime(2026, 3, 2, 9, 29, 59, tzinfo=UTC))
    assert pump.fire_due() == 0

    # WHEN its clock reaches the tick, and the pump looks again in the same second
    clock.advance(timedelta(seconds=1))
    fired = [pump.fire_due(), pump.fire_due()]

    # THEN the tick went once to the events queue, carrying Scheduler's scheduled time
    assert fired == [1, 0]
    assert ticks_sent(sqs, urls["events"]) == ["2026-03-02T09:30:00Z"]

    # AND an hour on, the next one; then, after the pump was stopped for an hour, only
    # the tick of the last 5 minutes (a laptop that slept does not catch up on a night)
    clock.advance(timedelta(hours=1))
    assert pump.fire_due() == 1
    clock.set(datetime(2026, 3, 2, 12, 32, tzinfo=UTC))
    assert pump.fire_due() == 1
    assert ticks_sent(sqs, urls["events"]) == ["2026-03-02T10:30:00Z", "2026-03-02T12:30:00Z"]
