"""The `stepline` command line.

    stepline dev --app MODULE:APP [--port 4566]     moto server + workers + timer pump, real time
    stepline worker --app MODULE:APP [--endpoint URL] [--create-resources]
    stepline send NAME --data JSON [--id ID]        put an event on the bus; say what it started
    stepline runs list [--workflow ID] [--status S] [--limit N]
    stepline runs show RUN_ID                       the audit trail
    stepline runs cancel RUN_ID
    stepline runs replay RUN_ID [--from-step STEP_ID] --app MODULE:APP
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

import functools
import importlib.metadata
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any, NoReturn, TypeVar

import typer
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from engine.errors import (
    AccessDeniedError,
    PermanentError,
    ResourceMissingError,
    TransientError,
    UnreachableError,
)
from engine.model import EventOutcome, RunStatus
from engine.views import RunView, history_of, running_step
from infra import render
from infra.dynamo import DynamoStore
from infra.eventbridge import EventBridgeBus, EventTooLargeError
from infra.resources import create_resources, discover_resources
from infra.settings import ConfigurationError, Settings
from infra.wiring import CLIENT_CONFIG, Clients, Services, build_services, load_app
from sdk import App, Event

F = TypeVar("F", bound=Callable[..., Any])
LOCAL_REGION = "us-east-1"
# A person is waiting: fail fast on an endpoint that is not there (workers keep the
# patient defaults of infra/wiring.py).
INTERACTIVE_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3)


class Exit(IntEnum):
    OK = 0
    REFUSED = 1
    USAGE = 2
    NOT_FOUND = 3
    UNREACHABLE = 4
    CONFIG = 5


class StatusChoice(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SLEEPING = "SLEEPING"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


cli = typer.Typer(
    name="stepline",
    help="Durable workflows on AWS Lambda: a local dev server, workers, events and runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_cli = typer.Typer(
    help="Inspect and manage runs: list, show (the audit trail), cancel, replay.",
    no_args_is_help=True,
)
cli.add_typer(runs_cli, name="runs")


def version() -> str:
    try:
        return importlib.metadata.version("stepline")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


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


EndpointOption = typer.Option(
    None,
    "--endpoint",
    envvar="AWS_ENDPOINT_URL",
    help="AWS endpoint, e.g. http://127.0.0.1:4566 for `stepline dev`; omit for real AWS.",
)
RegionOption = typer.Option(None, "--region", envvar="AWS_REGION", help="AWS region.")
PrefixOption = typer.Option(
    "stepline",
    "--prefix",
    envvar="STEPLINE_PREFIX",
    help="Name prefix of the table, queues and schedule group on an endpoint.",
)
JsonOption = typer.Option(False, "--json", help="Print JSON instead of tables.")


def fail(code: Exit, message: str) -> NoReturn:
    typer.echo(f"stepline: {message}", err=True)
    raise typer.Exit(int(code))


def errors(function: F) -> F:
    """Turn known failures into a one-line message and the documented exit code."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except ConfigurationError as error:
            fail(Exit.CONFIG, str(error))
        except (EndpointConnectionError, ConnectionError, UnreachableError) as error:
            fail(Exit.UNREACHABLE, f"cannot reach {_where()}: {error}. {_reach_hint()}")
        except TransientError as error:
            fail(Exit.REFUSED, str(error))
        except (NoCredentialsError, NoRegionError) as error:
            fail(
                Exit.CONFIG,
                f"{error}. Configure AWS credentials and a region (AWS_PROFILE, AWS_REGION), "
                "or pass --endpoint to use a local server.",
            )
        except (ResourceMissingError, AccessDeniedError) as error:
            fail(Exit.CONFIG, f"{error}. {_reach_hint()}")
        except (PermanentError, ClientError) as error:
            fail(Exit.REFUSED, str(error))

    return wrapper  # type: ignore[return-value]


def _where() -> str:
    return os.environ.get("AWS_ENDPOINT_URL") or "AWS"


def dev_environment(endpoint: str) -> str:
    """What plain boto3 needs to reach a dev server: the endpoint, a region and (any)
    credentials. boto3 reads AWS_DEFAULT_REGION, not AWS_REGION."""
    return (
        f"export AWS_ENDPOINT_URL={endpoint} AWS_DEFAULT_REGION={LOCAL_REGION} "
        "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing"
    )


def _trigger_names(application: App) -> list[str]:
    return sorted(
        {
            trigger.event
            for workflow in application.workflows.values()
            for trigger in workflow.triggers
        }
    )


def _example_event(application: App) -> str:
    """A `stepline send` argument list for an event this app is triggered by."""
    names = _trigger_names(application)
    if "user/signup" in names:
        return 'user/signup --data \'{"userId": "u1"}\''
    return f"{names[0]} --data '{{}}'" if names else "my/event --data '{}'"


def _reach_hint() -> str:
    if os.environ.get("AWS_ENDPOINT_URL"):
        return "Is `stepline dev` (or moto_server) running there?"
    return "Check your credentials and region, or pass --endpoint for a local server."


# -- connecting ----------------------------------------------------------------------------


@dataclass
class Connection:
    settings: Settings
    clients: Clients
    queue_urls: dict[str, str]

    @property
    def store(self) -> DynamoStore:
        return DynamoStore(self.clients.dynamodb, self.settings.table)

    def services(self, app: App | None = None) -> Services:
        return build_services(app or App("stepline-cli"), self.settings, clients=self.clients)


def connect(
    endpoint: str | None,
    region: str | None,
    prefix: str,
    *,
    create: bool = False,
    config: Config = INTERACTIVE_CONFIG,
) -> Connection:
    """Settings and clients for an endpoint (moto, LocalStack) or for real AWS."""
    settings = Settings.from_env()
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        # moto accepts any credentials; do not make people invent some.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        settings = settings.model_copy(
            update={"endpoint_url": endpoint, "region": region or settings.region or LOCAL_REGION}
        )
    elif region:
        settings = settings.model_copy(update={"region": region})
    clients = Clients(settings, config=config)
    queue_urls: dict[str, str] = {}
    if create:
        created = create_resources(clients, prefix, bus=settings.event_bus)
        settings = created.settings.model_copy(
            update={"endpoint_url": settings.endpoint_url, "region": settings.region}
        )
        queue_urls = created.queue_urls
    elif endpoint and not os.environ.get("STEPLINE_WORK_QUEUE_URL"):
        try:
            found = discover_resources(clients, prefix, bus=settings.event_bus)
        except ClientError as error:
            if "NonExistentQueue" in str(error) or "QueueDoesNotExist" in str(error):
                raise ConfigurationError(
                    f"no Stepline queues named {prefix}-* at {endpoint}: start `stepline dev`, "
                    "or run `stepline worker --create-resources`, or pass --prefix"
                ) from None
            raise
        settings = found.settings.model_copy(
            update={"endpoint_url": settings.endpoint_url, "region": settings.region}
        )
        queue_urls = found.queue_urls
    return Connection(
        settings=settings, clients=Clients(settings, config=config), queue_urls=queue_urls
    )


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def _wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop.wait(0.5):
        pass


def _configure_console_logging(verbose: bool) -> None:
    import logging

    from infra.logs import Redact, quiet_expression_library

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    # Masks the values of STEPLINE_REDACT_FIELDS and caps long lines, as in Lambda.
    handler.addFilter(Redact())
    quiet_expression_library()
    logger = logging.getLogger("stepline")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    # moto's server logs every request; nobody wants that in a dev console.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


# -- dev and worker ------------------------------------------------------------------------


@cli.command()
@errors
def dev(
    app: str = typer.Option(..., "--app", envvar="STEPLINE_APP", help="MODULE:APP to run."),
    port: int = typer.Option(4566, "--port", help="Port of the local AWS endpoint."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    prefix: str = PrefixOption,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug lines."),
) -> None:
    """Run a local Stepline: moto's server, the resources, the workers and the timer pump.

    Runs in real time until Ctrl-C. Point your app (or `stepline send`) at the printed
    endpoint.
    """
    application = load_app(app)
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        fail(Exit.CONFIG, "`stepline dev` needs moto's server: pip install 'stepline[local]'")
    with socket.socket() as probe:
        if probe.connect_ex((host, port)) == 0:
            fail(Exit.REFUSED, f"port {port} on {host} is already in use; pass --port")
    import logging

    from infra.worker import QueueSet, Worker

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    endpoint = f"http://{host}:{port}"
    try:
        os.environ["STEPLINE_APP"] = app
        connection = connect(endpoint, LOCAL_REGION, prefix, create=True, config=CLIENT_CONFIG)
        services = build_services(application, connection.settings, clients=connection.clients)
        queues = QueueSet.discover(connection.clients.sqs, connection.queue_urls)
        worker = Worker(services, queues, fire_schedules=True)
        _configure_console_logging(verbose)
        worker.start()
        typer.echo(
            f"Stepline dev server for app {application.name!r} "
            f"({', '.join(sorted(application.workflows))})\n"
            f"  endpoint  {endpoint}  (DynamoDB, SQS, EventBridge, Scheduler on moto)\n"
            f"  bus       {connection.settings.event_bus}   table  {connection.settings.table}\n"
            "\nSend an event:\n"
            f"  stepline send {_example_event(application)} --endpoint {endpoint}\n"
            f'or from code: plain boto3 put_events with "EventBusName": '
            f'"{connection.settings.event_bus}", after\n'
            f"  {dev_environment(endpoint)}\n"
            "Inspect runs:\n"
            f"  stepline runs list --endpoint {endpoint}\n"
            "\nPress Ctrl-C to stop.",
        )
        sys.stdout.flush()
        _wait_for_stop()
        typer.echo("stopping: finishing the batches in hand...")
        worker.stop()
    finally:
        server.stop()
    typer.echo("stopped")


@cli.command()
@errors
def worker(
    app: str = typer.Option(..., "--app", envvar="STEPLINE_APP", help="MODULE:APP to run."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    create_resources_: bool = typer.Option(
        False,
        "--create-resources",
        help="Create the table, queues, rules and schedule group first.",
    ),
    fire_schedules: bool | None = typer.Option(
        None,
        "--fire-schedules/--no-fire-schedules",
        help="Fire due Scheduler schedules (default: on with --endpoint, where moto never does).",
    ),
    poll_seconds: int = typer.Option(1, "--poll-seconds", help="SQS long-poll wait."),
    visibility_timeout: int = typer.Option(
        30,
        "--visibility-timeout",
        min=1,
        help="Seconds a received message stays hidden; a worker that dies frees its "
        "messages after this long.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug lines."),
) -> None:
    """Run the engine and event handlers against an existing endpoint (or real AWS).

    Several workers may serve the same endpoint at once.
    """
    application = load_app(app)
    from infra.worker import QueueSet, Worker

    connection = connect(endpoint, region, prefix, create=create_resources_, config=CLIENT_CONFIG)
    settings = connection.settings.model_copy(update={"app": app})
    urls = connection.queue_urls
    if not urls:
        settings.require_queue()
        urls = {"work": settings.work_queue_url}
        for role in ("trigger", "waits", "cancel"):
            url = os.environ.get(f"STEPLINE_{role.upper()}_QUEUE_URL")
            if url:
                urls[role] = url
    services = build_services(application, settings, clients=connection.clients)
    queues = QueueSet.discover(connection.clients.sqs, urls)
    worker = Worker(
        services,
        queues,
        fire_schedules=bool(endpoint) if fire_schedules is None else fire_schedules,
        poll_seconds=poll_seconds,
        visibility_timeout=visibility_timeout,
    )
    _configure_console_logging(verbose)
    worker.start()
    typer.echo(
        f"worker for app {application.name!r} serving {', '.join(sorted(urls))} "
        f"at {endpoint or 'AWS'} (pid {os.getpid()}); Ctrl-C to stop"
    )
    sys.stdout.flush()
    _wait_for_stop()
    worker.stop()
    typer.echo("stopped")


# -- events --------------------------------------------------------------------------------


@cli.command()
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
        _print_json(result)
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
            "stays on the trigger queue until one is; `stepline runs list` shows the runs it "
            "starts."
        )
    return (
        "Is the stack deployed in this region (its trigger function processes events), or a "
        "`stepline worker` serving its trigger queue? `stepline runs list` shows the runs it "
        "starts."
    )


# -- runs ----------------------------------------------------------------------------------


def _load_run(connection: Connection, run_id: str) -> Any:
    loaded = connection.store.load(run_id)
    if loaded is None:
        fail(
            Exit.NOT_FOUND,
            f"no run {run_id!r} in table {connection.settings.table!r} at {_where()}; "
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
            f"no run {given!r} in table {connection.settings.table!r} at {_where()}, and no run "
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
        _print_json([view.to_json() for view in views])
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
        _print_json(
            {
                "run": view.to_json(),
                "event": loaded.event.model_dump(mode="json"),
                "steps": [step.to_json() for step in steps],
                "running": running.to_json() if running else None,
            }
        )
    else:
        render.show(render.timeline(view, steps, running))


@runs_cli.command("cancel")
@errors
def runs_cancel(
    run_id: str = typer.Argument(..., help="The run id, or a unique start of it."),
    reason: str = typer.Option("cancelled from the CLI", "--reason", help="Recorded on the run."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Cancel a run: it runs no further step; its waits and timers are withdrawn."""
    connection = connect(endpoint, region, prefix)
    run_id = resolve_run_id(connection, run_id)
    try:
        cancelled = connection.services().lifecycle.cancel(run_id, reason)
    except KeyError:
        _load_run(connection, run_id)  # exits with the not-found message
        raise
    status = _load_run(connection, run_id).run.status.value
    if as_json:
        _print_json({"run_id": run_id, "cancelled": cancelled, "status": status})
    elif cancelled:
        typer.echo(f"cancelled {run_id}")
    else:
        typer.echo(f"{run_id} had already finished ({status}); nothing to cancel")


@runs_cli.command("replay")
@errors
def runs_replay(
    run_id: str = typer.Argument(
        ...,
        help="A finished run (COMPLETED, FAILED or CANCELLED): its id, or a unique start of it.",
    ),
    from_step: str | None = typer.Option(
        None,
        "--from-step",
        help="Keep the recorded results of the steps before this one; re-run it and the rest.",
    ),
    app: str = typer.Option(..., "--app", envvar="STEPLINE_APP", help="MODULE:APP of the run."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Re-run a finished run as a new run, with the same event.

    The workers (`stepline dev`, `stepline worker` or the deployed engine) execute it.
    """
    application = load_app(app)
    connection = connect(endpoint, region, prefix)
    run_id = resolve_run_id(connection, run_id)
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
    if as_json:
        _print_json({"run_id": new_id, "replay_of": run_id, "from_step": from_step})
    else:
        typer.echo(
            f"replaying {run_id} as {new_id}" + (f" from step {from_step}" if from_step else "")
        )


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
