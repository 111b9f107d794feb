"""Visibility and bad input: a key expression that fails on an event refuses that event
for that workflow only, with a log line naming the workflow and the expression (never the
event's data), and the event's outcome says so; `stepline workflows list` shows each
workflow's controls."""

from __future__ import annotations

import json
import logging

from typer.testing import CliRunner

from infra.local import LocalRuntime
from infra.local.cli import cli
from sdk import App, Concurrency, Context, Event, RateLimit, Singleton, Throttle, Timeouts
from tests.conftest import START
from tests.flow.helpers import outcome

app = App("crm")


@app.workflow(
    "sync-crm",
    trigger="crm/contact.updated",
    idempotency="event.data.contactId",
    rate_limit=RateLimit(limit=10, period="1m", key="event.data.accountId"),
    concurrency=[Concurrency(limit=5), Concurrency(limit=1, key="event.data.accountId")],
    singleton=Singleton(key="event.data.contactId", mode="cancel"),
    throttle=Throttle(limit=5, period="1s", key="event.data.accountId", burst=1),
    timeouts=Timeouts(start="10m", finish="1h"),
)
def sync(ctx: Context) -> str:
    return ctx.step.run("sync", lambda: ctx.event.data["contactId"])


@app.workflow("audit", trigger="crm/contact.updated")
def audit(ctx: Context) -> str:
    return "logged"


@app.workflow(
    "per-account",
    trigger="crm/contact.updated",
    concurrency=[Concurrency(2, key="event.data.accountId")],
)
def per_account(ctx: Context) -> str:
    return ctx.step.run("count", lambda: ctx.event.data["accountId"])


SECRET = "4111-1111-1111-1111"


def test_a_key_expression_that_fails_refuses_the_event_for_that_workflow_only(caplog):
    caplog.set_level(logging.INFO)
    with LocalRuntime(app, start=START) as rt:
        # GIVEN an event without the field the keys read (and with a secret in its data)
        bad = Event(name="crm/contact.updated", data={"card": SECRET}, id="e1")
        started = rt.send(bad)
        # THEN the workflows whose keys need it start nothing; the other one runs
        assert [run.split("-")[0] for run in started] == ["audit"]
        skipped = {entry.workflow_id: entry for entry in outcome(rt, "e1").skipped}
        assert set(skipped) == {"sync-crm", "per-account"}
        assert skipped["sync-crm"].control == "key"
        assert (
            outcome(rt, "e1")
            .summary()
            .endswith(
                "sync-crm: the idempotency key expression 'event.data.contactId' failed: no such "
                "field or key; per-account: the concurrency key expression 'event.data.accountId' "
                "failed: no such field or key"
            )
        )
        # AND the log names the workflow and the expression, never the event's data
        refusals = [
            r.getMessage() for r in caplog.records if "event.data.contactId" in r.getMessage()
        ]
        assert refusals and "sync-crm" in refusals[0]
        assert all(SECRET not in record.getMessage() for record in caplog.records)
        # AND a good event behind it starts its runs
        good = Event(
            name="crm/contact.updated", data={"contactId": "c1", "accountId": "a1"}, id="e2"
        )
        assert len(rt.send(good)) == 3
        assert all(run.status == "COMPLETED" for run in rt.runs())


def test_workflows_list_shows_each_workflows_controls():
    result = CliRunner().invoke(cli, ["workflows", "list", "--app", f"{__name__}:app", "--json"])
    assert result.exit_code == 0, result.output
    described = {workflow["id"]: workflow for workflow in json.loads(result.output)["workflows"]}
    controls = described["sync-crm"]["controls"]
    assert controls["idempotency"] == "event.data.contactId"
    assert controls["rate_limit"] == {
        "limit": 10,
        "period_seconds": 60.0,
        "key": "event.data.accountId",
    }
    assert controls["concurrency"] == [
        {"limit": 5, "key": None, "scope": "workflow"},
        {"limit": 1, "key": "event.data.accountId", "scope": "workflow"},
    ]
    assert controls["singleton"] == {"key": "event.data.contactId", "mode": "cancel"}
    assert controls["timeouts"] == {"start_seconds": 600.0, "finish_seconds": 3600.0}
    assert described["audit"]["controls"]["concurrency"] == []

    table = CliRunner().invoke(
        cli, ["workflows", "list", "--app", f"{__name__}:app"], env={"COLUMNS": "200"}
    )
    assert table.exit_code == 0, table.output
    for line in (
        "idempotency: one run per event.data.contactId per 24h",
        "rate_limit: 10 per 1m per event.data.accountId, excess dropped",
        "concurrency: 1 at once per event.data.accountId",
        "singleton: cancel per event.data.contactId",
        "throttle: 5 starts per 1s per event.data.accountId, burst 1, excess queued",
        "timeouts: start within 10m, finish within 1h",
    ):
        assert line in table.output


def test_an_event_a_control_stopped_can_be_looked_up_with_the_reason():
    with LocalRuntime(app, start=START) as rt:
        first = Event(
            name="crm/contact.updated", data={"contactId": "c1", "accountId": "a1"}, id="e1"
        )
        [run_id] = [run for run in rt.send(first) if run.startswith("sync-crm-")]
        again = Event(
            name="crm/contact.updated", data={"contactId": "c1", "accountId": "a1"}, id="e2"
        )
        rt.send(again)
        # in Python
        found = rt.outcome("e2")
        assert found is not None
        [entry] = [entry for entry in found.skipped if entry.workflow_id == "sync-crm"]
        assert (entry.control, entry.run_id) == ("idempotency", run_id)
        assert rt.outcome("never-sent") is None
        # and with the CLI (here against the runtime's embedded moto)
        env = {"STEPLINE_TABLE": rt.settings.table, "AWS_DEFAULT_REGION": "us-east-1"}
        shown = CliRunner().invoke(cli, ["events", "show", "e2"], env=env)
        assert shown.exit_code == 0, shown.output
        assert (
            f"  sync-crm: idempotency (run {run_id}): a duplicate of run {run_id} by "
            'idempotency key event.data.contactId = "c1"'
        ) in shown.output
        as_json = json.loads(
            CliRunner().invoke(cli, ["events", "show", "e2", "--json"], env=env).output
        )
        assert as_json["skipped"][0]["control"] == "idempotency"
        missing = CliRunner().invoke(cli, ["events", "show", "nope"], env=env)
        assert missing.exit_code == 3 and "no record of event 'nope'" in missing.output
