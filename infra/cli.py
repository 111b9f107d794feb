"""The `stepline` command line.

    stepline dev --app MODULE:APP [--port 4566]     moto server + workers + timer pump, real time
    stepline worker --app MODULE:APP [--endpoint URL] [--create-resources]
    stepline send NAME --data JSON [--id ID]        put an event on the bus
    stepline runs list [--workflow ID] [--status S] [--limit N]
    stepline runs show RUN_ID                       the audit trail
    stepline runs cancel RUN_ID
    stepline runs replay RUN_ID [--from-step STEP_ID] --app MODULE:APP

Every read command takes `--json`. Where to connect: `--endpoint` (or AWS_ENDPOINT_URL)
for moto or LocalStack, otherwise real AWS with the usual credentials; resource names
come from the STEPLINE_* variables (see infra/settings.py) or, on an endpoint, from
`--prefix` (default "stepline", what `stepline dev` creates).

Exit codes scripts can rely on:

| code | meaning |
|---|---|
| 0 | done (including "nothing to do", e.g. cancelling a finished run) |
| 1 | the operation was refused (e.g. replaying a run that has not finished) |
| 2 | bad command line (unknown option, malformed --data) |
| 3 | not found: no such run or step |
| 4 | cannot reach the endpoint or AWS |
| 5 | configuration problem: the app does not import, a resource or credentials are missing |
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
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

from engine.model import RunStatus
from engine.ports import AdapterError, TransientError
from engine.views import RunView, history_of
from infra import render
from infra.dynamo import DynamoStore, TableMissing
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
        except (EndpointConnectionError, ConnectionError) as error:
            fail(Exit.UNREACHABLE, f"cannot reach {_where()}: {error}. {_reach_hint()}")
        except TransientError as error:
            if "Could not connect" in str(error) or "unreachable" in str(error):
                fail(Exit.UNREACHABLE, f"cannot reach {_where()}: {error}. {_reach_hint()}")
            fail(Exit.REFUSED, str(error))
        except (NoCredentialsError, NoRegionError) as error:
            fail(
                Exit.CONFIG,
                f"{error}. Configure AWS credentials and a region (AWS_PROFILE, AWS_REGION), "
                "or pass --endpoint to use a local server.",
            )
        except TableMissing as error:
            fail(Exit.CONFIG, f"{error}. {_reach_hint()}")
        except (AdapterError, ClientError) as error:
            fail(Exit.REFUSED, str(error))

    return wrapper  # type: ignore[return-value]


def _where() -> str:
    return os.environ.get("AWS_ENDPOINT_URL") or "AWS"


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
            f'  stepline send user/signup --data \'{{"userId": "u1"}}\' --endpoint {endpoint}\n'
            "or from code (plain boto3 put_events), after:\n"
            f"  export AWS_ENDPOINT_URL={endpoint} AWS_REGION={LOCAL_REGION}\n"
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
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Put an event on the bus."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as error:
        fail(Exit.USAGE, f"--data is not JSON: {error.msg} at char {error.pos}")
    if not isinstance(payload, dict):
        fail(Exit.USAGE, f"--data must be a JSON object, not a {type(payload).__name__}")
    connection = connect(endpoint, region, prefix)
    bus = EventBridgeBus(
        connection.clients.events, bus=connection.settings.event_bus, source="stepline.cli"
    )
    try:
        [sent] = bus.publish([Event(name=name, data=payload, id=event_id or "")])
    except EventTooLargeError as error:
        fail(Exit.USAGE, str(error))
    if as_json:
        _print_json({"id": sent, "name": name, "bus": connection.settings.event_bus})
    else:
        typer.echo(f"sent {name} ({sent}) to bus {connection.settings.event_bus}")


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


@runs_cli.command("list")
@errors
def runs_list(
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Only this workflow."),
    status: StatusChoice | None = typer.Option(None, "--status", "-s", help="Only this status."),
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
        render.console().print(render.runs_table(views))


@runs_cli.command("show")
@errors
def runs_show(
    run_id: str = typer.Argument(..., help="The run id."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """The audit trail of a run: every step, attempt, sleep and wait, with times."""
    connection = connect(endpoint, region, prefix)
    loaded = _load_run(connection, run_id)
    view = RunView.of(loaded.run, loaded.event)
    steps = history_of(loaded)
    if as_json:
        _print_json(
            {
                "run": view.to_json(),
                "event": loaded.event.model_dump(mode="json"),
                "steps": [step.to_json() for step in steps],
            }
        )
    else:
        render.console().print(render.timeline(view, steps))


@runs_cli.command("cancel")
@errors
def runs_cancel(
    run_id: str = typer.Argument(..., help="The run id."),
    reason: str = typer.Option("cancelled from the CLI", "--reason", help="Recorded on the run."),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
    as_json: bool = JsonOption,
) -> None:
    """Cancel a run: it runs no further step; its waits and timers are withdrawn."""
    connection = connect(endpoint, region, prefix)
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
    run_id: str = typer.Argument(..., help="A finished run (COMPLETED, FAILED or CANCELLED)."),
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
