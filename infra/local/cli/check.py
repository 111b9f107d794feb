"""`stepline check` and `stepline runs export`: will the runs in flight survive a deploy?

    stepline check --app MODULE:APP                       the runs in flight in the table
    stepline check --app MODULE:APP --history FILE|DIR    exported histories (repeatable)
    stepline runs export RUN_ID [--output FILE]           a run's history, as JSON

`check` replays each history against the app's current code without running any step
(engine/replay_check.py) and lists the runs that would fail: the step where the code
diverges from the history, the error it raises, or the workflow the app no longer
defines. It exits 1 if any would fail, so a CI job can run it before `sam deploy`.
A history file is what `runs export` writes (engine/history_file.py); a folder means
every `*.json` file in it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from engine.history_file import HistoryFileError, history_document, loaded_from_document
from engine.model import RunStatus
from engine.ports import LoadedRun
from engine.replay_check import Verdict, check_run
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
from infra.local.cli.runs import resolve_run_id, runs_cli
from infra.wiring import load_app


def _history_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            fail(Exit.NOT_FOUND, f"no history file or folder {str(path)!r}")
    return files


def _read(path: Path) -> LoadedRun:
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        fail(Exit.USAGE, f"{path}: cannot read it as JSON ({error})")
    try:
        return loaded_from_document(document, source=str(path))
    except HistoryFileError as error:
        fail(Exit.USAGE, str(error))


@errors
def check(
    app: str = typer.Option(..., "--app", envvar="STEPLINE_APP", help="MODULE:APP to check."),
    history: list[Path] = typer.Option(
        [],
        "--history",
        "-f",
        help="A history written by `stepline runs export`, or a folder of them (repeatable).",
    ),
    table: bool | None = typer.Option(
        None,
        "--table/--no-table",
        help="Check the runs in flight in the table (default: only when no --history).",
    ),
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Only this workflow."),
    limit: int = typer.Option(10_000, "--limit", min=1, help="At most this many runs per status."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Replay runs in flight against the app's code, running nothing; list those that
    would fail.

    Reads the table's runs in flight, or histories from `stepline runs export`; exits
    1 if any run would fail (run it in CI before `sam deploy`).
    """
    application = load_app(app)
    loaded = [_read(path) for path in _history_files(history)]
    if table if table is not None else not history:
        store = connect(endpoint, region, prefix).store
        for status in RunStatus:
            if status.terminal:
                continue
            for record in store.list_runs(workflow_id=workflow, status=status, limit=limit):
                run = store.load(record.run_id)
                if run is not None:
                    loaded.append(run)
    if workflow:
        loaded = [run for run in loaded if run.run.workflow_id == workflow]
    now = datetime.now(UTC)
    verdicts = [check_run(application, run, now=now) for run in loaded]
    failing = [verdict for verdict in verdicts if not verdict.ok]
    if as_json:
        print_json(
            {
                "app": application.name,
                "checked": len(verdicts),
                "failing": len(failing),
                "runs": [verdict.to_json() for verdict in verdicts],
            }
        )
    else:
        _report(application.name, verdicts, failing)
    if failing:
        raise typer.Exit(int(Exit.REFUSED))


def _report(app: str, verdicts: list[Verdict], failing: list[Verdict]) -> None:
    for verdict in failing:
        typer.echo(
            f"FAIL {verdict.run_id} ({verdict.workflow_id}, {verdict.status}, "
            f"{verdict.kind}): {verdict.message}"
        )
    if not verdicts:
        typer.echo(f"no runs to check against app {app!r}")
    elif failing:
        typer.echo(
            f"{len(failing)} of {len(verdicts)} run(s) would fail on the current code of app {app!r}: "
            "keep the old code path for them (ctx.patched), let them finish first, or "
            "cancel them"
        )
    else:
        typer.echo(f"all {len(verdicts)} run(s) replay on the current code of app {app!r}")


@runs_cli.command("export")
@errors
def runs_export(
    run_id: str = typer.Argument(..., help="The run id, or a unique start of it."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the history to this file (default: print it)."
    ),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
) -> None:
    """Write a run's history as JSON, for `stepline check --history` (e.g. in CI)."""
    connection = connect(endpoint, region, prefix)
    run_id = resolve_run_id(connection, run_id)
    loaded = connection.store.load(run_id)
    if loaded is None:
        fail(Exit.NOT_FOUND, f"no run {run_id!r}")
    text = json.dumps(history_document(loaded), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote the history of {run_id} ({len(loaded.steps)} steps) to {output}")
