"""`stepline runs`: list and show (the audit trail) runs.

A RUN_ID may be any unique start of a run id (`resolve_run_id`). The actions (cancel,
pause, resume, replay; one run or many) are in infra/local/cli/runs_actions.py, `watch`
in infra/local/cli/watch.py.
"""

from __future__ import annotations

from enum import StrEnum

import typer

from engine.model import RunStatus
from engine.ports import LoadedRun
from engine.views import RunView, history_of, running_step
from infra.local import render
from infra.local.cli.common import (
    Connection,
    EndpointOption,
    Exit,
    JsonOption,
    PrefixOption,
    RegionOption,
    connect,
    errors,
    fail,
    print_json,
    where,
)


class StatusChoice(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SLEEPING = "SLEEPING"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    PAUSED = "PAUSED"


runs_cli = typer.Typer(
    help="Inspect and manage runs: list, show, watch, cancel, pause, resume, replay.",
    no_args_is_help=True,
)


def _load_run(connection: Connection, run_id: str) -> LoadedRun:
    loaded = connection.store.load(run_id)
    if loaded is None:
        fail(
            Exit.NOT_FOUND,
            f"no run {run_id!r} in table {connection.settings.table!r} at {where()}; "
            "`stepline runs list` shows recent runs",
        )
    return loaded


CUT_MARKS = ("…", "...")
#: How many runs an ambiguous prefix lists.
CANDIDATES_SHOWN = 10


def resolve_run_id(connection: Connection, given: str) -> str:
    """The run id `given` names: the id itself, or the one run whose id starts with it.

    An id printed cut ("order-fulfilment-3ee7…") is taken as the prefix it shows. A
    prefix that several runs share fails with the candidates listed.
    """
    text = given.strip()
    prefix = text
    cut = text.endswith(CUT_MARKS)
    while prefix.endswith(CUT_MARKS):
        prefix = prefix.removesuffix("…").removesuffix("...").rstrip()
    if not cut and connection.store.get_run(text) is not None:
        return text
    cut_note = (
        f" (An id ending in '…' was cut when it was printed: {prefix!r} is what it shows.)"
        if cut
        else ""
    )
    if not prefix:
        fail(Exit.USAGE, "give a run id (or the start of one); `stepline runs list` shows them")
    candidates = connection.store.run_ids_with_prefix(prefix, limit=CANDIDATES_SHOWN + 1)
    if len(candidates) == 1:
        typer.echo(f"stepline: {prefix!r} is the start of run {candidates[0]}.{cut_note}", err=True)
        return candidates[0]
    if not candidates:
        fail(
            Exit.NOT_FOUND,
            f"no run {given!r} in table {connection.settings.table!r} at {where()}, and no run "
            f"id starts with {prefix!r}.{cut_note} `stepline runs list` shows recent runs",
        )
    shown = candidates[:CANDIDATES_SHOWN]
    more = " (and more)" if len(candidates) > CANDIDATES_SHOWN else ""
    fail(
        Exit.USAGE,
        f"{prefix!r} is the start of {len(shown)} run ids{more}; give more of the id.{cut_note}\n"
        + "\n".join(f"  {candidate}" for candidate in shown),
    )


@runs_cli.command("list")
@errors
def runs_list(
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Only this workflow."),
    status: StatusChoice | None = typer.Option(
        None, "--status", "-s", case_sensitive=False, help="Only this status."
    ),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000, help="At most this many."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """List recent runs, newest first."""
    connection = connect(endpoint, region, prefix)
    records = connection.store.list_runs(
        workflow_id=workflow, status=RunStatus(status.value) if status else None, limit=limit
    )
    views = [RunView.of(record) for record in records]
    if as_json:
        print_json([view.to_json() for view in views])
    elif not views:
        typer.echo("no runs")
    else:
        render.show(render.runs_table(views))


@runs_cli.command("show")
@errors
def runs_show(
    run_id: str = typer.Argument(..., help="The run id, or a unique start of it."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """The audit trail of a run: every step, attempt, sleep and wait, with times, the
    tracebacks of failures, and the step a RUNNING run is executing."""
    connection = connect(endpoint, region, prefix)
    loaded = _load_run(connection, resolve_run_id(connection, run_id))
    view = RunView.of(loaded.run, loaded.event)
    steps = history_of(loaded)
    running = running_step(loaded)
    if as_json:
        print_json(
            {
                "run": view.to_json(),
                "event": loaded.event.model_dump(mode="json"),
                "steps": [step.to_json() for step in steps],
                "running": running.to_json() if running else None,
            }
        )
    else:
        render.show(render.timeline(view, steps, running))
