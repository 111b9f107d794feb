"""`stepline send`: put an event on the bus, then say which runs it started (or why none).
`stepline events show ID`: the same record, looked up later (kept for the lookback window):
for each workflow the event started nothing for, the control that stopped it and why.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import typer

from engine.errors import PermanentError, TransientError
from engine.model import EventOutcome
from infra.dynamo import DynamoStore
from infra.event_rules import stack_rules
from infra.eventbridge import EventBridgeBus, EventTooLargeError
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
from infra.local.cli.watch import events_cli
from sdk import Event


@events_cli.command("show")
@errors
def events_show(
    event_id: str = typer.Argument(..., help="The event's id (what `stepline send` printed)."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """What an event did: the runs it started, and why it started none for a workflow
    (rate limited, debounced or batched into run X, a duplicate of run X, skipped by a
    singleton, a key expression that failed)."""
    connection = connect(endpoint, region, prefix)
    outcome = connection.store.get_outcome(event_id, now=datetime.now(UTC))
    if outcome is None:
        fail(
            Exit.NOT_FOUND,
            f"no record of event {event_id!r}: it has not been processed yet, or it is "
            "older than the lookback window",
        )
    if as_json:
        print_json({**outcome.model_dump(mode="json"), "summary": outcome.summary()})
        return
    typer.echo(f"{outcome.event_name} ({outcome.event_id}) at {outcome.at:%Y-%m-%d %H:%M:%S}")
    typer.echo(outcome.summary())
    for entry in outcome.skipped:
        if entry.control:
            run = f" (run {entry.run_id})" if entry.run_id else ""
            typer.echo(f"  {entry.workflow_id}: {entry.control}{run}: {entry.reason}")


@errors
def send(
    name: str = typer.Argument(..., help="Event name (EventBridge DetailType), e.g. user/signup."),
    data: str = typer.Option("{}", "--data", "-d", help="Event data: a JSON object."),
    event_id: str | None = typer.Option(
        None, "--id", help="Event id; the same id never starts a workflow twice."
    ),
    wait: bool = typer.Option(
        True,
        "--wait/--no-wait",
        help="Wait for a worker to process the event and say which runs it started.",
    ),
    timeout: float = typer.Option(
        15.0, "--timeout", min=0, help="Seconds to wait for a worker to process the event."
    ),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Put an event on the bus, then say which runs it started (or why none)."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as error:
        fail(Exit.USAGE, f"--data is not JSON: {error.msg} at char {error.pos}")
    if not isinstance(payload, dict):
        fail(Exit.USAGE, f"--data must be a JSON object, not a {type(payload).__name__}")
    connection = connect(endpoint, region, prefix)
    bus_name = connection.settings.event_bus
    bus = EventBridgeBus(connection.clients.events, bus=bus_name, source="stepline.cli")
    store = connection.store
    # What an earlier event with this id did, to tell its record from this one's. The
    # event is sent even when the table cannot be read (the caller may only send).
    previous: EventOutcome | None = None
    unreadable: str | None = None
    if wait and event_id:
        try:
            previous = store.get_outcome(event_id, now=datetime.now(UTC))
        except (PermanentError, TransientError) as error:
            unreadable = str(error)
    try:
        [sent] = bus.publish([Event(name=name, data=payload, id=event_id or "")])
    except EventTooLargeError as error:
        fail(Exit.USAGE, str(error))
    if not as_json:
        typer.echo(f"sent {name} ({sent}) to bus {bus_name}")
        sys.stdout.flush()
    outcome: EventOutcome | None = None
    unrouted = _unrouted(connection, name) if wait else None
    if unrouted is not None:
        if as_json:
            print_json(
                {"id": sent, "name": name, "bus": bus_name, "processed": False, "summary": unrouted}
            )
        else:
            typer.echo(unrouted)
        return
    if wait and unreadable is None:
        try:
            outcome = _await_outcome(store, sent, previous, timeout)
        except (PermanentError, TransientError) as error:
            unreadable = str(error)
    if as_json:
        result: dict[str, Any] = {"id": sent, "name": name, "bus": bus_name}
        if wait:
            result["processed"] = outcome is not None
            result["outcome"] = outcome.model_dump(mode="json") if outcome else None
            result["summary"] = outcome.summary(previous) if outcome else None
        print_json(result)
    elif outcome is not None:
        typer.echo(outcome.summary(previous))
    if unreadable is not None:
        typer.echo(
            f"stepline: the event was sent, but what it started cannot be read from table "
            f"{connection.settings.table!r}: {unreadable}. Pass --no-wait to only send.",
            err=True,
        )
    elif wait and outcome is None:
        typer.echo(
            f"stepline: no worker has processed event {sent} within {timeout:g} s. "
            + _worker_hint(endpoint),
            err=True,
        )


def _unrouted(connection: Connection, name: str) -> str | None:
    """Why an event of this name starts nothing, if the stack's rules do not route it to
    Stepline (no workflow of the deployed app uses it); None if they do, or if the rules
    cannot be read (then the outcome is awaited as usual)."""
    try:
        routed = stack_rules(connection.clients.events, connection.settings).routed_names()
    except (PermanentError, TransientError):
        return None
    if not routed or name in routed:
        return None
    shown = sorted(n for n in routed if not n.startswith("stepline/"))
    known = ", ".join(shown[:10]) + (f" and {len(shown) - 10} more" if len(shown) > 10 else "")
    return (
        f"started nothing: no rule of stack {connection.settings.table!r} routes events named "
        f"{name!r} to Stepline, as no workflow of the deployed app uses that name"
        + (f" (the names it uses: {known})" if known else "")
    )


def _await_outcome(
    store: DynamoStore, event_id: str, previous: EventOutcome | None, timeout: float
) -> EventOutcome | None:
    """The trigger handler's record of this event, once it is there (None after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = store.get_outcome(event_id, now=datetime.now(UTC))
        if outcome is not None and (previous is None or outcome.at != previous.at):
            return outcome
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))


def _worker_hint(endpoint: str | None) -> str:
    if endpoint:
        return (
            f"Is `stepline dev` (or `stepline worker`) running against {endpoint}? The event "
            "stays on the events queue until one is; `stepline runs list` shows the runs it "
            "starts."
        )
    return (
        "Is the stack deployed in this region (its events function processes events), or a "
        "`stepline worker` serving its events queue? `stepline runs list` shows the runs it "
        "starts."
    )
