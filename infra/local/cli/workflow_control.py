"""`stepline workflows pause|resume ID` and `stepline timers fire RUN_ID`.

`workflows pause` holds the workflow's new runs as PAUSED (engine/control.py; engines
notice within a second) until `workflows resume`, which lifts the hold and resumes the
runs it held (not those paused one by one). `timers fire` is for the dev server only
(it refuses without `--endpoint`): the run's sleeps end and its waits time out now.
"""

from __future__ import annotations

import typer

from engine.control import RunControl
from infra.local.cli.common import (
    EndpointOption,
    Exit,
    JsonOption,
    PrefixOption,
    RegionOption,
    connect,
    errors,
    fail,
    print_json,
)
from infra.local.cli.runs import _load_run, resolve_run_id

# One `workflows` group: `list` (infra/local/cli/workflows.py) and pause|resume here.
from infra.local.cli.workflows import workflows_cli

timers_cli = typer.Typer(help="Fire a run's timers now (dev server only).", no_args_is_help=True)


@workflows_cli.command("pause")
@errors
def workflows_pause(
    workflow: str = typer.Argument(..., help="The workflow id."),
    reason: str = typer.Option("paused from the CLI", "--reason", help="Recorded on the hold."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Hold the workflow's new runs as PAUSED until `workflows resume`."""
    connection = connect(endpoint, region, prefix)
    services = connection.services()
    RunControl(services.ports, services.lifecycle).pause_workflow(workflow, reason)
    if as_json:
        print_json({"workflow": workflow, "paused": True})
    else:
        typer.echo(
            f"paused workflow {workflow}: its new runs are held as PAUSED (running ones go "
            f"on; `stepline runs pause --workflow {workflow}` pauses those)"
        )


@workflows_cli.command("resume")
@errors
def workflows_resume(
    workflow: str = typer.Argument(..., help="The workflow id."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Lift the hold on the workflow and resume the runs it held."""
    connection = connect(endpoint, region, prefix)
    services = connection.services()
    resumed = RunControl(services.ports, services.lifecycle).resume_workflow(workflow)
    if as_json:
        print_json({"workflow": workflow, "paused": False, "resumed": resumed})
    else:
        typer.echo(f"resumed workflow {workflow} and {len(resumed)} run(s) it held")


@timers_cli.command("fire")
@errors
def timers_fire(
    run_id: str = typer.Argument(..., help="The run id, or a unique start of it."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Wake a sleeping run now, or time out its wait now (dev server only)."""
    if not endpoint:
        fail(
            Exit.REFUSED,
            "`timers fire` changes a run's recorded wake times, so it only works against a "
            "local server: pass --endpoint (e.g. http://127.0.0.1:4566 for `stepline dev`)",
        )
    connection = connect(endpoint, region, prefix)
    run_id = resolve_run_id(connection, run_id)
    _load_run(connection, run_id)
    services = connection.services()
    fired = RunControl(services.ports, services.lifecycle).fire_timers(run_id)
    if as_json:
        print_json({"run_id": run_id, "fired": fired})
    elif fired:
        typer.echo(f"fired {', '.join(fired)} of {run_id}: it runs on now")
    else:
        status = _load_run(connection, run_id).run.status
        typer.echo(f"{run_id} ({status}) has no pending sleep, wait or retry to fire")
