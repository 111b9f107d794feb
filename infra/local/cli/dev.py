"""`stepline dev`: moto's server, the resources, the workers, the timer pump and the dashboard.

It runs in real time until Ctrl-C and keeps its state across restarts: the table,
pending schedules and queued messages are saved to `--state` (`.stepline/dev-state/`
in the current folder, or `STEPLINE_DEV_STATE`) every `--save-every` seconds and when it
stops, and restored when it starts (infra/local/devstate.py; `--fresh` starts empty).
With `--reload` the workers run in a child process that is restarted, state kept, when
one of the app's Python files changes (infra/local/devloop.py). It records its app, its
folder and its dashboard's URL in the table (infra/local/devinfo.py), so `runs replay`
and `stepline ui` against it need no `--app`.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from pathlib import Path

import typer

from infra.clients import CLIENT_CONFIG
from infra.local import devinfo
from infra.local.cli.common import (
    LOCAL_REGION,
    Exit,
    PrefixOption,
    configure_console_logging,
    connect,
    dev_environment,
    errors,
    fail,
)
from infra.local.cli.serve import _wait_for_stop
from infra.local.cli.ui import AllowRemoteOption
from infra.local.devloop import Reloader, Saver, example_event, watched_files
from infra.local.devstate import DEFAULT_DIRECTORY, DevState, reconcile
from infra.local.worker import QueueSet, Worker
from infra.resources import sync_with_app
from infra.wiring import build_services, load_app
from sdk import App


def _reimport(spec: str, root: Path) -> App:
    """The app as its files are now: the project's modules are imported afresh."""
    stale = watched_files(root)
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() in stale:
            del sys.modules[name]
    return load_app(spec)


@errors
def dev(
    app: str = typer.Option(..., "--app", envvar="STEPLINE_APP", help="MODULE:APP to run."),
    port: int = typer.Option(4566, "--port", help="Port of the local AWS endpoint."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    prefix: str = PrefixOption,
    state: Path = typer.Option(
        DEFAULT_DIRECTORY,
        "--state",
        envvar="STEPLINE_DEV_STATE",
        help="Folder the dev server keeps its state in across restarts.",
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Start empty (the saved state is replaced)."),
    save_every: float = typer.Option(
        2.0, "--save-every", min=0.2, help="Seconds between saves of the state."
    ),
    reload: bool = typer.Option(
        False, "--reload", help="Restart the workers when the app's files change."
    ),
    ui_port: int = typer.Option(8288, "--ui-port", help="Port of the dashboard."),
    ui_host: str = typer.Option("127.0.0.1", "--ui-host", help="Address of the dashboard."),
    no_ui: bool = typer.Option(False, "--no-ui", help="Do not start the dashboard."),
    allow_remote: bool = AllowRemoteOption,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug lines."),
) -> None:
    """Run a local Stepline: moto's server, the resources, the workers, the timer pump and
    the dashboard, keeping its state across restarts.

    Runs in real time until Ctrl-C. Point your app (or `stepline send`) at the printed
    endpoint.
    """
    started = time.monotonic()
    application = load_app(app)
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        fail(Exit.CONFIG, "`stepline dev` needs moto's server: pip install 'stepline[local]'")
    with socket.socket() as probe:
        if probe.connect_ex((host, port)) == 0:
            fail(Exit.REFUSED, f"port {port} on {host} is already in use; pass --port")
    if not no_ui:
        from infra.local.ui import UnsafeAddressError, check_address

        try:
            check_address(ui_host, allow_remote=allow_remote)
        except UnsafeAddressError as error:
            fail(Exit.USAGE, str(error))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    endpoint = f"http://{host}:{port}"
    root = Path.cwd()
    try:
        os.environ["STEPLINE_APP"] = app
        connection = connect(endpoint, LOCAL_REGION, prefix, create=True, config=CLIENT_CONFIG)
        services = build_services(application, connection.settings, clients=connection.clients)
        sync_with_app(services.clients, services.settings, services.app)
        configure_console_logging(verbose)
        kept = DevState(
            state,
            connection.clients,
            table=connection.settings.table,
            schedule_group=connection.settings.schedule_group,
            queue_urls=connection.queue_urls,
            region=LOCAL_REGION,
        )
        restored = None
        if kept.exists and not fresh:
            restored = kept.restore()
            reconcile(services)
        current = {"app": application}
        ui_server = None
        if not no_ui:
            from infra.local.ui import Backend, UiServer

            ui_server = UiServer(
                Backend(connection, app_provider=lambda: current["app"]),
                host=ui_host,
                port=ui_port,
                allow_remote=allow_remote,
            )
            ui_server.start()
        devinfo.record(
            connection.store, app=app, ui_url=ui_server.url if ui_server is not None else None
        )
        reloader = worker = None
        if reload:

            def refreshed() -> None:
                try:
                    current["app"] = _reimport(app, root)
                except Exception as error:  # shown; the dashboard keeps the last good app
                    typer.echo(f"stepline dev: the app does not import now: {error}", err=True)

            reloader = Reloader(
                ["--app", app, "--endpoint", endpoint, "--prefix", prefix]
                + (["--verbose"] if verbose else []),
                root=root,
                on_reload=refreshed,
            ).start()
        else:
            queues = QueueSet.discover(connection.clients.sqs, connection.queue_urls)
            worker = Worker(services, queues, fire_schedules=True)
            worker.start()
        saver = Saver(kept, app=app, every=save_every).start()
        lines = [
            f"Stepline dev server for app {application.name!r} "
            f"({', '.join(sorted(application.workflows))})",
            f"  endpoint   {endpoint}  (DynamoDB, SQS, EventBridge, Scheduler on moto)",
            f"  bus        {connection.settings.event_bus}   table  {connection.settings.table}",
        ]
        if ui_server is not None:
            lines.append(f"  dashboard  {ui_server.url}")
            if ui_server.moved_from is not None:
                typer.echo(
                    f"port {ui_server.moved_from} is taken; the dashboard is on {ui_server.port}",
                    err=True,
                )
            if ui_server.warning:
                typer.echo(ui_server.warning, err=True)
        kept_line = f"  state      {state}/ (saved every {save_every:g} s)"
        if restored is not None:
            kept_line += f"; restored {restored.describe()}"
        elif fresh and kept.exists:
            kept_line += "; started fresh"
        lines.append(kept_line)
        if reload:
            lines.append("  reload     workers restart when the app's files change")
        lines += [
            "",
            "Send an event:",
            f"  stepline send {example_event(application)} --endpoint {endpoint}",
            f'or from code: plain boto3 put_events with "EventBusName": '
            f'"{connection.settings.event_bus}", after',
            f"  {dev_environment(endpoint)}",
            "Inspect runs:",
            f"  stepline runs list --endpoint {endpoint}",
            "",
            f"Ready in {time.monotonic() - started:.1f} s. Press Ctrl-C to stop.",
        ]
        typer.echo("\n".join(lines))
        sys.stdout.flush()
        _wait_for_stop()
        typer.echo("stopping: finishing the batches in hand...")
        if reloader is not None:
            reloader.stop()
        if worker is not None:
            worker.stop()
        saver.stop()
        if ui_server is not None:
            ui_server.stop()
        typer.echo(f"state saved in {state}/")
    finally:
        server.stop()
    typer.echo("stopped")
