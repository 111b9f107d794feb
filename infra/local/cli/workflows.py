"""`stepline workflows`: the app's workflows, what triggers them and their flow controls.

`list` reads only the app (`--app`), never AWS: it says what each workflow is started by
(events, with their conditions), what cancels it, and its flow controls in the order
they apply (engine/flow/describe.py). This is the group `workflows pause|resume` belong in.
"""

from __future__ import annotations

import typer
from rich.text import Text

from engine.flow.describe import as_json, controls
from infra.local import render
from infra.local.cli.common import JsonOption, errors, print_json
from infra.local.render import Column, Rows
from infra.wiring import load_app

workflows_cli = typer.Typer(
    help="The app's workflows: their triggers and flow controls.",
    no_args_is_help=True,
)

_COLUMNS = (
    Column("workflow", lead=True),
    Column("triggered by", whole=False),
    Column("flow controls", whole=False, fold_min=30),
)


@workflows_cli.command("list")
@errors
def workflows_list(
    app: str = typer.Option(..., "--app", envvar="STEPLINE_APP", help="MODULE:APP to describe."),
    as_json_output: bool = JsonOption,
) -> None:
    """Each workflow with its triggers, cancel rules and flow controls."""
    application = load_app(app)
    workflows = sorted(application.workflows.values(), key=lambda workflow: workflow.id)
    if as_json_output:
        print_json([as_json(workflow) for workflow in workflows])
        return
    if not workflows:
        typer.echo(f"app {application.name!r} defines no workflows")
        return
    rows = []
    for workflow in workflows:
        triggers = [
            trigger.event + (f" if {trigger.if_.source}" if trigger.if_ else "")
            for trigger in workflow.triggers
        ] or ["(invoked only)"]
        triggers += [f"cancelled by {rule.event}" for rule in workflow.cancel_on]
        rows.append(
            [
                Text(workflow.id),
                Text("\n".join(triggers)),
                Text("\n".join(controls(workflow)) or "(none)"),
            ]
        )
    render.show(Rows(_COLUMNS, rows, boxed=True))
