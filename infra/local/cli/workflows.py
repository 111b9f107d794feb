"""`stepline workflows list`: an app's workflows, what starts them, each Cron's next ticks
and their flow controls.

    stepline workflows list --app MODULE:APP [--ticks N] [--after ISO_TIME] [--json]

Reads the app's code only (no endpoint, no table): each workflow with its event
triggers, its `invoke`-only or `on_failure` role, and for each of its Crons the
schedule in words and the next N ticks (engine/cron.py `upcoming_ticks`), in the
cron's time zone and in UTC, then what cancels it and its flow controls in the order they
apply (engine/flow/describe.py). `--after` lists the ticks after another instant than now
(the system clock, infra/clock.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from engine.cron import Upcoming, upcoming_ticks
from engine.flow.describe import as_json as flow_json
from engine.flow.describe import controls
from infra.clock import SystemClock
from infra.local.cli.common import Exit, JsonOption, errors, fail, print_json
from infra.wiring import load_app
from sdk import App, Workflow

workflows_cli = typer.Typer(
    help=(
        "The app's workflows: what starts them, each Cron's next ticks, their flow "
        "controls; pause and resume."
    ),
    no_args_is_help=True,
)


def _after(text: str | None) -> datetime:
    if text is None:
        return SystemClock().now()
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        fail(Exit.USAGE, f"--after {text!r}: use an ISO 8601 time, e.g. 2026-03-01T00:00:00Z")
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def _tick_text(upcoming: Upcoming, tick: datetime) -> str:
    local = tick.astimezone(upcoming.cron.zone)
    text = f"{local:%Y-%m-%d %H:%M} {local.tzname()}"
    return text if upcoming.cron.tz == "UTC" else f"{text} ({tick:%H:%M} UTC)"


def _triggers(app: App, workflow: Workflow) -> list[str]:
    found = [f"event {trigger.event}" for trigger in workflow.triggers]
    found.extend(repr(cron) for cron in workflow.crons)
    found.extend(
        f"on_failure of {w.id}" for w in app.workflows.values() if w.on_failure is workflow
    )
    return found or ["invoked only (ctx.step.invoke)"]


@workflows_cli.command("list")
@errors
def workflows_list(
    app: str = typer.Option(..., "--app", envvar="STEPLINE_APP", help="MODULE:APP to list."),
    ticks: int = typer.Option(3, "--ticks", min=1, max=100, help="Next ticks shown per Cron."),
    after: str | None = typer.Option(
        None, "--after", help="Show the ticks after this ISO 8601 time (default: now)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """List the app's workflows, their triggers, each Cron's next ticks and flow controls."""
    application = load_app(app)
    start = _after(after)
    upcoming: dict[str, list[Upcoming]] = {}
    for item in upcoming_ticks(application, start, count=ticks):
        upcoming.setdefault(item.workflow_id, []).append(item)
    workflows = sorted(application.workflows.values(), key=lambda w: w.id)
    if as_json:
        print_json(
            {
                "app": application.name,
                "after": start.isoformat(),
                "workflows": [
                    {
                        "id": workflow.id,
                        "events": [trigger.event for trigger in workflow.triggers],
                        "cancel_on": [rule.event for rule in workflow.cancel_on],
                        "controls": flow_json(workflow)["controls"],
                        "crons": [
                            {
                                "expression": item.cron.expression,
                                "tz": item.cron.tz,
                                "describe": item.cron.describe(),
                                "next_ticks": [
                                    tick.astimezone(item.cron.zone).isoformat()
                                    for tick in item.ticks
                                ],
                            }
                            for item in upcoming.get(workflow.id, [])
                        ],
                    }
                    for workflow in workflows
                ],
            }
        )
        return
    if not workflows:
        typer.echo(f"app {application.name!r} has no workflows")
        return
    for workflow in workflows:
        typer.echo(f"{workflow.id}: {', '.join(_triggers(application, workflow))}")
        for item in upcoming.get(workflow.id, []):
            typer.echo(f"  {item.cron!r}: {item.cron.describe()}")
            if not item.ticks:
                typer.echo("    no tick to come")
            for tick in item.ticks:
                typer.echo(f"    next  {_tick_text(item, tick)}")
        for rule in workflow.cancel_on:
            typer.echo(f"  cancelled by {rule.event}")
        for control in controls(workflow):
            typer.echo(f"  {control}")
