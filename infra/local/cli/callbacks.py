"""`stepline callbacks`: complete, fail or heartbeat a callback by its id.

    stepline callbacks complete ID [--result JSON]
    stepline callbacks fail ID [--error-type TYPE] [--error-message TEXT]
    stepline callbacks heartbeat ID

The id is what the workflow handed out (`cb.id`; `stepline runs show` prints it for a
waiting callback). The command answers it directly in the table (engine/callbacks.py)
and wakes the run, so it needs the table and the work queue: `--endpoint` for
`stepline dev`, or the STEPLINE_* settings of a deployed stack. A system that holds
only the id, without access to the table, puts an event on the bus instead (README,
"Callbacks").

Exit codes: 0 done, 1 refused (expired, already completed, the run was cancelled, a bad
result), 2 a malformed --result, 3 no callback has this id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import typer

from engine.callbacks import Receipt
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
from sdk import CallbackError

callbacks_cli = typer.Typer(
    help="Answer a callback by its id: complete, fail or heartbeat it.", no_args_is_help=True
)

IdArgument = typer.Argument(..., help="The callback's id (cb.id; `runs show` prints it).")


def _answer(
    endpoint: str | None,
    region: str | None,
    prefix: str,
    as_json: bool,
    verb: str,
    call: Callable[[Any], Receipt],
) -> None:
    connection = connect(endpoint, region, prefix)
    try:
        receipt = call(connection.services().callbacks)
    except CallbackError as refused:
        code = Exit.NOT_FOUND if refused.reason == "unknown" else Exit.REFUSED
        if as_json:
            print_json({"refused": refused.reason, "message": str(refused)})
            raise typer.Exit(int(code)) from None
        fail(code, str(refused))
    if as_json:
        print_json(receipt.to_json())
    else:
        typer.echo(f"{verb} callback {receipt.step_id} of run {receipt.run_id} ({receipt.status})")


@callbacks_cli.command("complete")
@errors
def complete(
    callback_id: str = IdArgument,
    result: str = typer.Option("null", "--result", help="The result, as JSON."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Complete a callback with a result: the workflow's `cb.result()` returns it."""
    try:
        value = json.loads(result)
    except ValueError as error:
        fail(Exit.USAGE, f"--result is not JSON ({error}); quote strings: --result '\"yes\"'")
    _answer(
        endpoint,
        region,
        prefix,
        as_json,
        "completed",
        lambda callbacks: callbacks.complete(callback_id, value),
    )


@callbacks_cli.command("fail")
@errors
def fail_callback(
    callback_id: str = IdArgument,
    error_type: str = typer.Option("CallbackFailed", "--error-type", help="StepError.error_type."),
    error_message: str = typer.Option("", "--error-message", help="StepError.error_message."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Fail a callback: the workflow's `cb.result()` raises StepError with this error."""
    _answer(
        endpoint,
        region,
        prefix,
        as_json,
        "failed",
        lambda callbacks: callbacks.fail(
            callback_id, error_type=error_type, error_message=error_message
        ),
    )


@callbacks_cli.command("heartbeat")
@errors
def heartbeat(
    callback_id: str = IdArgument,
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Tell a callback its completer is alive: its heartbeat timeout starts again."""
    _answer(
        endpoint,
        region,
        prefix,
        as_json,
        "heartbeat sent to",
        lambda callbacks: callbacks.heartbeat(callback_id),
    )
