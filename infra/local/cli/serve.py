"""`stepline dev` and `stepline worker`: the queues' handlers in real time, off Lambda.

`dev` starts moto's server, creates the resources and serves them with the workers and
the timer pump of infra/local/worker.py; `worker` serves an existing endpoint, or real
AWS beside (or instead of) the Lambda functions.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType

import typer

from infra.clients import CLIENT_CONFIG
from infra.local.cli.common import (
    LOCAL_REGION,
    EndpointOption,
    Exit,
    PrefixOption,
    RegionOption,
    configure_console_logging,
    connect,
    dev_environment,
    errors,
    fail,
)
from infra.local.worker import QueueSet, Worker, sync_cron_schedules
from infra.wiring import build_services, load_app
from sdk import App


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


def _wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop.wait(0.5):
        pass


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
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    endpoint = f"http://{host}:{port}"
    try:
        os.environ["STEPLINE_APP"] = app
        connection = connect(endpoint, LOCAL_REGION, prefix, create=True, config=CLIENT_CONFIG)
        services = build_services(application, connection.settings, clients=connection.clients)
        sync_cron_schedules(services)
        queues = QueueSet.discover(connection.clients.sqs, connection.queue_urls)
        worker = Worker(services, queues, fire_schedules=True)
        configure_console_logging(verbose)
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
    if create_resources_:
        sync_cron_schedules(services)
    queues = QueueSet.discover(connection.clients.sqs, urls)
    worker = Worker(
        services,
        queues,
        fire_schedules=bool(endpoint) if fire_schedules is None else fire_schedules,
        poll_seconds=poll_seconds,
        visibility_timeout=visibility_timeout,
    )
    configure_console_logging(verbose)
    worker.start()
    typer.echo(
        f"worker for app {application.name!r} serving {', '.join(sorted(urls))} "
        f"at {endpoint or 'AWS'} (pid {os.getpid()}); Ctrl-C to stop"
    )
    sys.stdout.flush()
    _wait_for_stop()
    worker.stop()
    typer.echo("stopped")
