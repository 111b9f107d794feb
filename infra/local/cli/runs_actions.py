"""`stepline runs cancel|pause|resume|replay`: act on one run, several, or every run a filter picks.

    stepline runs cancel RUN_ID                         one run, at once (as before)
    stepline runs pause --workflow billing --status sleeping
    stepline runs resume --workflow billing --yes
    stepline runs replay --status failed --since 2h --from-step charge

Given one RUN_ID (a unique start of one will do) the action is taken at once. Given
several ids, or filters (`--workflow`, `--status`, `--since`, `--until`, `--data`; see
infra/local/browse.py), the command first says how many runs it will touch and asks
(`--yes` skips the question; without a terminal to ask on it refuses), then acts on each,
showing its progress, and ends with a count of what it did and what it skipped (a run
already finished cannot be cancelled, only a paused run can be resumed, ...).

Without filters a status is implied: cancel and pause take the runs that have not
finished, resume the PAUSED ones, replay the finished ones.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import typer

from engine.control import RunControl
from infra.local.browse import ACTIVE, FINISHED, FilterError, RunFilter, parse_when
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
)
from infra.local.cli.runs import _load_run, resolve_run_id, runs_cli
from infra.local.devinfo import app_for
from sdk import App

RunIds = typer.Argument(None, help="Run ids (or unique starts of them); or use filters.")
WorkflowFilter = typer.Option(None, "--workflow", "-w", help="Only runs of this workflow.")
StatusFilter = typer.Option(
    None, "--status", "-s", help="Only runs in this status (repeat for several; any case)."
)
SinceFilter = typer.Option(None, "--since", help="Created at or after: ISO time or '2h' ago.")
UntilFilter = typer.Option(None, "--until", help="Created before: ISO time or '30m' ago.")
DataFilter = typer.Option(
    None, "--data", help="Trigger event data: 'userId=u1' terms, all must hold."
)
YesOption = typer.Option(False, "--yes", "-y", help="Act without asking first.")
LimitOption = typer.Option(10_000, "--limit", min=1, help="Touch at most this many runs.")


class Selection:
    """The runs a bulk command acts on, from ids or filters."""

    def __init__(self, connection: Connection, run_ids: list[str], run_filter: RunFilter) -> None:
        self.connection = connection
        self.run_ids = run_ids
        self.filter = run_filter

    @property
    def single(self) -> bool:
        return len(self.run_ids) == 1 and self.filter.empty

    def resolve(self, limit: int) -> list[str]:
        if self.run_ids:
            ids = [resolve_run_id(self.connection, given) for given in self.run_ids]
            if self.filter.empty:
                return list(dict.fromkeys(ids))
            runs = self.connection.store.runs_of(ids)
            return [run_id for run_id in dict.fromkeys(ids) if run_id in runs]
        return [run.run_id for run in self.filter.select(self.connection.store, limit=limit)]


def _filter(
    workflow: str | None,
    status: list[str] | None,
    since: str | None,
    until: str | None,
    data: str | None,
    implied: frozenset[str],
    has_ids: bool,
) -> RunFilter:
    now = datetime.now(UTC)
    try:
        run_filter = RunFilter(
            workflow=workflow,
            statuses={value.upper() for value in status or []},
            since=parse_when(since, now),
            until=parse_when(until, now),
            query=data,
        )
    except FilterError as error:
        fail(Exit.USAGE, str(error))
    if not has_ids and run_filter.empty:
        fail(
            Exit.USAGE,
            "give run ids, or filters (--workflow, --status, --since, --until, --data) that "
            "pick the runs to act on",
        )
    if not has_ids and not run_filter.statuses:
        run_filter.statuses = set(implied)
    return run_filter


def _act(
    selection: Selection,
    verb: str,
    action: Callable[[str], tuple[bool, str]],
    *,
    yes: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Ask, then apply `action` (run id -> (done, note)) to each selected run."""
    run_ids = selection.resolve(limit)
    what = "the runs given" if selection.filter.empty else selection.filter.describe()
    if not run_ids:
        if as_json:
            print_json({"action": verb, "selected": 0, "done": [], "skipped": []})
        else:
            typer.echo(f"no runs to {verb} ({what})")
        return
    if not yes:
        typer.echo(f"This will {verb} {len(run_ids)} run(s) ({what}).", err=True)
        if not sys.stdin.isatty():
            fail(Exit.REFUSED, f"not asking without a terminal: pass --yes to {verb} them")
        if not typer.confirm("Go ahead?", default=False, err=True):
            fail(Exit.REFUSED, "nothing done")
    done: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    for number, run_id in enumerate(run_ids, 1):
        try:
            acted, note = action(run_id)
        except KeyError:
            acted, note = False, "no such run"
        except ValueError as error:
            acted, note = False, str(error)
        (done if acted else skipped).append({"run_id": run_id, "note": note})
        if not as_json:
            mark = "ok  " if acted else "skip"
            typer.echo(f"[{number}/{len(run_ids)}] {mark} {run_id}: {note}", err=True)
    if as_json:
        print_json({"action": verb, "selected": len(run_ids), "done": done, "skipped": skipped})
    else:
        typer.echo(f"{verb}: {len(done)} done, {len(skipped)} skipped, of {len(run_ids)}")


def _status_of(connection: Connection, run_id: str) -> str:
    return _load_run(connection, run_id).run.status.value


@runs_cli.command("cancel")
@errors
def runs_cancel(
    run_ids: list[str] | None = RunIds,
    reason: str = typer.Option("cancelled from the CLI", "--reason", help="Recorded on the run."),
    workflow: str | None = WorkflowFilter,
    status: list[str] | None = StatusFilter,
    since: str | None = SinceFilter,
    until: str | None = UntilFilter,
    data: str | None = DataFilter,
    yes: bool = YesOption,
    limit: int = LimitOption,
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Cancel runs: each runs no further step; its waits and timers are withdrawn."""
    connection = connect(endpoint, region, prefix)
    ids = run_ids or []
    selection = Selection(
        connection, ids, _filter(workflow, status, since, until, data, ACTIVE, bool(ids))
    )
    lifecycle = connection.services().lifecycle
    if selection.single:
        run_id = resolve_run_id(connection, ids[0])
        _load_run(connection, run_id)
        cancelled = lifecycle.cancel(run_id, reason)
        state = _status_of(connection, run_id)
        if as_json:
            print_json({"run_id": run_id, "cancelled": cancelled, "status": state})
        elif cancelled:
            typer.echo(f"cancelled {run_id}")
        else:
            typer.echo(f"{run_id} had already finished ({state}); nothing to cancel")
        return

    def cancel(run_id: str) -> tuple[bool, str]:
        if lifecycle.cancel(run_id, reason):
            return True, "cancelled"
        return False, f"already finished ({_status_of(connection, run_id)})"

    _act(selection, "cancel", cancel, yes=yes, limit=limit, as_json=as_json)


def _control_command(verb: str, implied: frozenset[str]) -> Callable[..., None]:
    paused = verb == "pause"

    @errors
    def command(
        run_ids: list[str] | None = RunIds,
        workflow: str | None = WorkflowFilter,
        status: list[str] | None = StatusFilter,
        since: str | None = SinceFilter,
        until: str | None = UntilFilter,
        data: str | None = DataFilter,
        yes: bool = YesOption,
        limit: int = LimitOption,
        endpoint: str | None = EndpointOption,
        region: str | None = RegionOption,
        prefix: str = PrefixOption,
        as_json: bool = JsonOption,
    ) -> None:
        connection = connect(endpoint, region, prefix)
        ids = run_ids or []
        selection = Selection(
            connection, ids, _filter(workflow, status, since, until, data, implied, bool(ids))
        )
        services = connection.services()
        control = RunControl(services.ports, services.lifecycle)

        def act(run_id: str) -> tuple[bool, str]:
            changed = control.pause(run_id) if paused else control.resume(run_id)
            state = _status_of(connection, run_id)
            if changed:
                return True, f"{verb}d (now {state})"
            return False, f"{state}: nothing to {verb}"

        if selection.single:
            run_id = resolve_run_id(connection, ids[0])
            _load_run(connection, run_id)
            changed, note = act(run_id)
            if as_json:
                print_json(
                    {
                        "run_id": run_id,
                        f"{verb}d": changed,
                        "status": _status_of(connection, run_id),
                    }
                )
            else:
                typer.echo(f"{verb}d {run_id}" if changed else f"{run_id} is {note}")
            return
        _act(selection, verb, act, yes=yes, limit=limit, as_json=as_json)

    command.__doc__ = (
        "Pause runs: each starts no new step (within a second) until resumed; what arrives "
        "meanwhile (timers, events, child results) is kept."
        if paused
        else "Resume paused runs: each replays and applies what arrived while it was paused."
    )
    return command


runs_cli.command("pause")(_control_command("pause", ACTIVE))
runs_cli.command("resume")(_control_command("resume", frozenset({"PAUSED"})))


@runs_cli.command("replay")
@errors
def runs_replay(
    run_ids: list[str] | None = typer.Argument(
        None,
        help="Finished runs (COMPLETED, FAILED or CANCELLED): ids or unique starts; or use filters.",
    ),
    from_step: str | None = typer.Option(
        None,
        "--from-step",
        help="Keep the recorded results of the steps before this one; re-run it and the rest.",
    ),
    app: str | None = typer.Option(
        None,
        "--app",
        envvar="STEPLINE_APP",
        help="MODULE:APP of the runs (not needed against `stepline dev`, which records its own).",
    ),
    workflow: str | None = WorkflowFilter,
    status: list[str] | None = StatusFilter,
    since: str | None = SinceFilter,
    until: str | None = UntilFilter,
    data: str | None = DataFilter,
    yes: bool = YesOption,
    limit: int = LimitOption,
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Re-run finished runs as new runs, with the same events.

    The workers (`stepline dev`, `stepline worker` or the deployed engine) execute them.
    """
    connection = connect(endpoint, region, prefix)
    ids = run_ids or []
    selection = Selection(
        connection, ids, _filter(workflow, status, since, until, data, FINISHED, bool(ids))
    )
    application = app_for(connection.store, app)
    lifecycle = connection.services(application).lifecycle

    def replay(run_id: str) -> tuple[bool, str]:
        original = _load_run(connection, run_id).run
        workflow_def = application.get(original.workflow_id)
        if workflow_def is None:
            return False, f"app {application.name!r} has no workflow {original.workflow_id!r}"
        new_id = lifecycle.replay(workflow_def, run_id, from_step=from_step)
        return True, f"replaying as {new_id}"

    if selection.single:
        _replay_one(connection, application, resolve_run_id(connection, ids[0]), from_step, as_json)
        return
    _act(selection, "replay", replay, yes=yes, limit=limit, as_json=as_json)


def _replay_one(
    connection: Connection, application: App, run_id: str, from_step: str | None, as_json: bool
) -> None:
    original = _load_run(connection, run_id).run
    workflow = application.get(original.workflow_id)
    if workflow is None:
        fail(
            Exit.CONFIG,
            f"app {application.name!r} has no workflow {original.workflow_id!r} (run {run_id})",
        )
    lifecycle = connection.services(application).lifecycle
    try:
        new_id = lifecycle.replay(workflow, run_id, from_step=from_step)
    except KeyError as error:
        fail(Exit.NOT_FOUND, str(error.args[0]))
    except ValueError as error:
        fail(Exit.REFUSED, str(error))
    result: dict[str, Any] = {"run_id": new_id, "replay_of": run_id, "from_step": from_step}
    if as_json:
        print_json(result)
    else:
        typer.echo(
            f"replaying {run_id} as {new_id}" + (f" from step {from_step}" if from_step else "")
        )
