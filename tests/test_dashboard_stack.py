"""The dashboard against a deployed stack: template.yaml created on moto (as in
tests/test_deploy.py), the functions played by the test, and the dashboard connected as
`stepline ui` connects without `--endpoint`: the user's credentials and the stack's
`STEPLINE_*` settings, nothing deployed for it.

Its pages read what the deployed functions wrote (runs, what each event did, workflow
holds), its actions change the run in the stack's table and send to the stack's queue,
and its dead-letters page finds the stack's four dead-letter queues from the source
queues' redrive policies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from engine.clock import ManualClock
from engine.ids import run_id_for
from infra.local.cli.common import connect
from infra.local.ui import Backend, create_app
from tests.test_deploy import REGION, Lambdas, Stack, deploy, put_event, shop, store_of

TOKEN = "stack-token"
HOST = "127.0.0.1:8288"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with mock_aws():
        yield deploy(boto3.Session(region_name=REGION), "stepline", {})


@pytest.fixture
def dashboard(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`stepline ui --app ...` on a machine whose environment holds the stack's settings."""
    for name in list(os.environ):
        if name.startswith("STEPLINE_") or name == "AWS_ENDPOINT_URL":
            monkeypatch.delenv(name)
    for name, value in stack.functions["engine"].environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STEPLINE_EVENTS_QUEUE_URL", stack.outputs["EventsQueueUrl"])
    monkeypatch.setenv("AWS_REGION", REGION)
    connection = connect(None, REGION, "stepline")
    backend = Backend(connection, app_provider=lambda: shop)
    return create_app(backend, token=TOKEN, hosts=[HOST]).test_client()


def page(client: Any, path: str) -> str:
    response = client.get(path, headers={"Host": HOST})
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return str(response.get_data(as_text=True))


def act(client: Any, path: str) -> None:
    response = client.post(
        path, data={"token": TOKEN}, headers={"Host": HOST, "Origin": f"http://{HOST}"}
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]


def test_the_dashboard_reads_and_acts_on_a_deployed_stack(stack, dashboard):
    # GIVEN a run the stack's functions started and put to sleep
    lambdas = Lambdas(stack, ManualClock(datetime.now(UTC)), app=shop)
    store = store_of(stack)
    placed = put_event(stack, "order/placed", {"orderId": "o-9"})
    lambdas.drain()
    run_id = run_id_for("order", placed)
    assert store.get_run(run_id).status == "SLEEPING"
    # WHEN the dashboard is opened, THEN it lists the run and says what it waits for
    assert f'data-run="{run_id}"' in page(dashboard, "/runs")
    assert "sleeping until" in page(dashboard, f"/runs/{run_id}")
    # AND what the event did, and the workflows with their counts
    events = page(dashboard, "/events")
    assert "order/placed" in events and run_id in events
    workflows = page(dashboard, "/workflows")
    [order_row] = re.findall(r'<tr data-workflow="order">(.*?)</tr>', workflows, re.DOTALL)
    assert "order/placed" in order_row and re.search(r"sleeping\s*1", order_row)
    # AND the stack's two dead-letter queues
    dead = page(dashboard, "/dead-letters")
    assert sorted(re.findall(r'<article class="dlq" data-queue="(\w+)"', dead)) == [
        "events",
        "work",
    ]
    # WHEN the run is paused and resumed from it, THEN the stack's table says so, and the
    # resume's message on the stack's queue puts it back to sleep
    act(dashboard, f"/runs/{run_id}/pause")
    assert store.get_run(run_id).status == "PAUSED"
    act(dashboard, f"/runs/{run_id}/resume")
    lambdas.drain()
    assert store.get_run(run_id).status == "SLEEPING"
    # AND its timer still wakes it: the sleep goes on to the payment wait
    lambdas.clock.advance(timedelta(hours=2, seconds=1))
    assert lambdas.fire_due_schedules() >= 1
    lambdas.drain()
    assert store.get_run(run_id).status == "WAITING"
    assert lambdas.denials() == []
