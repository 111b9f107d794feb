"""`stepline workflows list`: each workflow's triggers and each Cron's next ticks, read from
the app's code alone (no endpoint)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from infra.local.cli import cli
from sdk import App, Context, Cron, Trigger

APP = App("listed")


@APP.workflow("nightly", trigger=Cron("30 2 * * *", tz="Europe/Paris"))
def nightly(ctx: Context) -> None: ...


@APP.workflow("report", trigger=[Cron("0 0 1 * *"), Trigger("report/requested")])
def report(ctx: Context) -> None: ...


def billing_failed(ctx: Context) -> None: ...


@APP.workflow("billing", on_failure=billing_failed)
def billing(ctx: Context) -> None: ...


def listing(*args: str) -> str:
    result = CliRunner().invoke(
        cli, ["workflows", "list", "--app", "tests.test_workflows_cli:APP", *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_workflows_list_shows_each_crons_next_ticks_in_its_zone_across_a_dst_change():
    # GIVEN an app with a nightly 02:30 Paris cron, a monthly UTC one, an invoked workflow
    # and its on_failure handler
    # WHEN its workflows are listed the day before clocks go forward in Paris
    output = listing("--after", "2026-03-27T12:00:00Z", "--ticks", "3")

    # THEN each workflow shows what starts it, and the nightly cron skips the 02:30 that
    # does not exist on 29 March (as EventBridge Scheduler does)
    assert output.splitlines() == [
        "billing: invoked only (ctx.step.invoke)",
        "billing.on-failure: on_failure of billing",
        "nightly: Cron('30 2 * * *', tz='Europe/Paris')",
        "  Cron('30 2 * * *', tz='Europe/Paris'): At 02:30 every day (Europe/Paris)",
        "    next  2026-03-28 02:30 CET (01:30 UTC)",
        "    next  2026-03-30 02:30 CEST (00:30 UTC)",
        "    next  2026-03-31 02:30 CEST (00:30 UTC)",
        "report: event report/requested, Cron('0 0 1 * *')",
        "  Cron('0 0 1 * *'): At 00:00 on the first day of every month",
        "    next  2026-04-01 00:00 UTC",
        "    next  2026-05-01 00:00 UTC",
        "    next  2026-06-01 00:00 UTC",
    ]


def test_workflows_list_as_json():
    listed = json.loads(listing("--after", "2026-03-27T12:00:00Z", "--ticks", "1", "--json"))
    assert listed["app"] == "listed"
    by_id = {workflow["id"]: workflow for workflow in listed["workflows"]}
    assert by_id["report"]["events"] == ["report/requested"]
    assert by_id["nightly"]["crons"] == [
        {
            "expression": "30 2 * * *",
            "tz": "Europe/Paris",
            "describe": "At 02:30 every day (Europe/Paris)",
            "next_ticks": ["2026-03-28T02:30:00+01:00"],
        }
    ]
    assert by_id["billing"]["crons"] == []


def test_workflows_list_refuses_a_malformed_time():
    result = CliRunner().invoke(
        cli, ["workflows", "list", "--app", "tests.test_workflows_cli:APP", "--after", "soon"]
    )
    assert result.exit_code == 2
    assert "--after 'soon'" in result.output
