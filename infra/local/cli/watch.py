"""Live views: `stepline runs watch RUN_ID` and `stepline events list [--follow]`.

`runs watch` redraws a run's audit trail (`runs show`) as it changes, in place on a
terminal, and prints it again on each change when piped; it ends when the run finishes
(exit 0), or after `--timeout` seconds (exit 0, saying so). `events list` prints the
recent events with what each did (infra/local/events_feed.py); `--follow` keeps
printing new ones until Ctrl-C (exit 0) or `--timeout`.
"""

from __future__ import annotations

import time

import typer
from rich.live import Live

from engine.views import RunView, history_of, running_step
from infra.local import render
from infra.local.cli.common import (
    EndpointOption,
    JsonOption,
    PrefixOption,
    RegionOption,
    connect,
    errors,
    print_json,
)
from infra.local.cli.runs import _load_run, resolve_run_id, runs_cli
from infra.local.events_feed import EventRow, recent_events

# `events list` here, `events show` (one event, and what the flow controls did with it)
# in infra/local/cli/events.py.
events_cli = typer.Typer(help="Recent events and what each did.", no_args_is_help=True)


@runs_cli.command("watch")
@errors
def runs_watch(
    run_id: str = typer.Argument(..., help="The run id, or a unique start of it."),
    interval: float = typer.Option(1.0, "--interval", min=0.1, help="Seconds between looks."),
    timeout: float | None = typer.Option(None, "--timeout", min=0, help="Stop after this long."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
) -> None:
    """Follow a run: its audit trail, redrawn as it changes, until it finishes."""
    connection = connect(endpoint, region, prefix)
    run_id = resolve_run_id(connection, run_id)
    out = render.console()
    deadline = None if timeout is None else time.monotonic() + timeout
    last: object = None
    live = Live(console=out, auto_refresh=False) if out.is_terminal else None
    if live is not None:
        live.start()
    try:
        while True:
            loaded = _load_run(connection, run_id)
            steps = history_of(loaded)
            running = running_step(loaded)
            view = RunView.of(loaded.run, loaded.event)
            state = (loaded.run.version, loaded.run.lease, [s.to_json() for s in steps])
            if state != last:
                last = state
                drawing = render.timeline(view, steps, running)
                if live is not None:
                    live.update(drawing, refresh=True)
                else:
                    render.show(drawing, out)
                    typer.echo("")
            if loaded.run.status.terminal:
                break
            if deadline is not None and time.monotonic() >= deadline:
                typer.echo(f"stopped watching {run_id}: it is still {loaded.run.status}", err=True)
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        # Ctrl-C is how watching a run that goes on ends: a normal end, exit 0.
        typer.echo(f"stopped watching {run_id}", err=True)
    finally:
        if live is not None:
            live.stop()


@events_cli.command("list")
@errors
def events_list(
    name: list[str] | None = typer.Option(None, "--name", "-n", help="Only events of this name."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="At most this many."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events."),
    interval: float = typer.Option(1.0, "--interval", min=0.1, help="Seconds between looks."),
    timeout: float | None = typer.Option(None, "--timeout", min=0, help="Stop following after."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Recent events, newest first, with what each did: the runs it started (or why
    none), the waits it resolved, the runs it cancelled."""
    connection = connect(endpoint, region, prefix)
    names = set(name or [])
    rows = recent_events(connection.store, names=names, limit=limit)
    if as_json and not follow:
        print_json([row.to_json() for row in rows])
        return
    shown: dict[str, str] = {}
    _print_rows(list(reversed(rows)), shown, as_json)
    if not follow:
        if not rows:
            typer.echo("no events in the lookback window")
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(interval)
            rows = recent_events(connection.store, names=names, limit=limit)
            _print_rows(list(reversed(rows)), shown, as_json)
    except KeyboardInterrupt:
        # Ctrl-C is how following ends: a normal end, exit 0.
        return


def _print_rows(rows: list[EventRow], shown: dict[str, str], as_json: bool) -> None:
    """Print rows not printed yet, or whose outcome changed since (oldest first)."""
    for row in rows:
        summary = row.summary()
        if shown.get(row.event.id) == summary:
            continue
        shown[row.event.id] = summary
        if as_json:
            print_json(row.to_json())
            continue
        at = render.when(row.event.ts)
        data = render.preview(row.event.data, 60)
        typer.echo(f"{at}  {row.event.name}  {row.event.id}  {data}\n    -> {summary}")
