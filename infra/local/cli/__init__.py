"""The `stepline` command line (the `stepline` console script; `python -m infra.local.cli`).

One module per command group: `serve` (dev, worker), `events` (send), `runs` (list,
show), `runs_actions` (cancel, pause, resume, replay: one run or many), `watch` (runs
watch, events list), `check` (check, and `runs export`), `workflows` (list: triggers,
Cron ticks and flow controls) with `workflow_control` (workflows pause|resume, timers
fire), `callbacks` (complete, fail, heartbeat), `ui` (the dashboard), on what they share
in `common` (exit codes, options, error handling, connecting).

    stepline dev --app MODULE:APP [--port 4566]     moto server + workers + timer pump +
                                                    dashboard, real time, state kept
    stepline worker --app MODULE:APP [--endpoint URL] [--create-resources]
    stepline ui [--endpoint URL] [--port 8288]      the web dashboard
    stepline send NAME --data JSON [--id ID]        put an event on the bus; say what it started
    stepline runs list [--workflow ID] [--status S] [--limit N]
    stepline runs show RUN_ID                       the audit trail
    stepline runs watch RUN_ID                      follow it live
    stepline runs cancel|pause|resume RUN_ID...     or by filters: --workflow --status --since ...
    stepline runs replay RUN_ID... [--from-step STEP_ID]
    stepline runs export RUN_ID [--output FILE]     a run's history as JSON
    stepline check --app MODULE:APP [--history FILE|DIR]   would runs in flight survive this code?
    stepline events list [--follow]                 recent events and what each did
    stepline events show EVENT_ID                   what one event did (and which control stopped it)
    stepline workflows list --app MODULE:APP [--ticks N]   triggers, flow controls, each Cron's next ticks
    stepline workflows pause|resume ID              hold a workflow's new runs
    stepline timers fire RUN_ID                     end its sleep / time out its wait now (dev)
    stepline callbacks complete|fail|heartbeat CALLBACK_ID
    stepline --version

RUN_ID may be any unique start of a run id (an id printed cut, "…", is read as one).

Every read command takes `--json`. Where to connect: `--endpoint` (or AWS_ENDPOINT_URL)
for moto or LocalStack, otherwise real AWS with the usual credentials; resource names
come from the STEPLINE_* variables (see infra/settings.py) or, on an endpoint, from
`--prefix` (default "stepline", what `stepline dev` creates).

Exit codes scripts can rely on:

| code | meaning |
|---|---|
| 0 | done (including "nothing to do", e.g. cancelling a finished run) |
| 1 | the operation was refused (e.g. replaying a run that has not finished) |
| 2 | bad command line (unknown option, malformed --data, a run id start several runs share) |
| 3 | not found: no such run or step |
| 4 | cannot reach the endpoint or AWS |
| 5 | configuration problem: the app does not import, a resource or credentials are missing |
"""

from __future__ import annotations

import typer

from infra.local.cli import runs_actions, workflow_control  # noqa: F401  (register commands)
from infra.local.cli.callbacks import callbacks_cli
from infra.local.cli.check import check
from infra.local.cli.common import Exit, version
from infra.local.cli.dev import dev
from infra.local.cli.events import send
from infra.local.cli.runs import runs_cli
from infra.local.cli.serve import worker
from infra.local.cli.ui import ui
from infra.local.cli.watch import events_cli
from infra.local.cli.workflow_control import timers_cli
from infra.local.cli.workflows import workflows_cli

__all__ = ["Exit", "cli", "main"]

cli = typer.Typer(
    name="stepline",
    help="Durable workflows on AWS Lambda: a local dev server, workers, events and runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cli.add_typer(runs_cli, name="runs")
cli.add_typer(events_cli, name="events")
cli.add_typer(workflows_cli, name="workflows")
cli.add_typer(timers_cli, name="timers")
cli.add_typer(callbacks_cli, name="callbacks")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"stepline {version()}")
        raise typer.Exit()


@cli.callback()
def _options(
    _version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Durable workflows on AWS Lambda: a local dev server, workers, events and runs."""


# Registered in the order `stepline --help` lists them.
cli.command()(dev)
cli.command()(worker)
cli.command()(send)
cli.command()(check)
cli.command()(ui)


def main() -> None:
    cli()
