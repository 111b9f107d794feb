"""`stepline worker`: the queues' handlers in real time, off Lambda.

It serves an existing endpoint (a `stepline dev`, a `moto_server`, LocalStack), or real
AWS beside (or instead of) the Lambda functions, with the workers and the timer pump of
infra/local/worker.py. `stepline dev` (infra/local/cli/dev.py) runs the same workers
beside its own moto server.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

import typer

from infra.clients import CLIENT_CONFIG
from infra.local.cli.common import (
    EndpointOption,
    PrefixOption,
    RegionOption,
    configure_console_logging,
    connect,
    errors,
)
from infra.local.worker import QueueSet, Worker
from infra.resources import sync_with_app
from infra.wiring import build_services, load_app


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
        events_url = os.environ.get("STEPLINE_EVENTS_QUEUE_URL")
        if events_url:
            urls["events"] = events_url
    services = build_services(application, settings, clients=connection.clients)
    if create_resources_:
        sync_with_app(services.clients, services.settings, services.app)
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
