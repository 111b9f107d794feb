"""`stepline ui`: the web dashboard against a dev server, a moto_server or a deployed stack.

    stepline ui --endpoint http://127.0.0.1:4566      # a dev server or moto_server
    stepline ui                                       # real AWS: STEPLINE_* as for the CLI
    stepline ui --app workflows:app                   # adds triggers and rules, and replay

It listens on 127.0.0.1 (refusing any other address without `--allow-remote`), prints
its URL and serves until Ctrl-C. `stepline dev` starts one by itself.
"""

from __future__ import annotations

import functools
import sys

import typer

from infra.local.cli.common import (
    EndpointOption,
    Exit,
    PrefixOption,
    RegionOption,
    connect,
    errors,
    fail,
)
from infra.local.cli.serve import _wait_for_stop
from infra.local.devinfo import app_spec
from infra.wiring import load_app
from sdk import App

HostOption = typer.Option(
    "127.0.0.1", "--ui-host", "--host", help="Address the dashboard listens on."
)
AllowRemoteOption = typer.Option(
    False, "--allow-remote", help="Allow listening on an address other machines can reach."
)


@errors
def ui(
    port: int = typer.Option(8288, "--port", help="Port of the dashboard (a free one if taken)."),
    host: str = HostOption,
    allow_remote: bool = AllowRemoteOption,
    app: str | None = typer.Option(
        None,
        "--app",
        envvar="STEPLINE_APP",
        help="MODULE:APP, for workflow definitions and replay (found by itself on a dev server).",
    ),
    endpoint: str | None = EndpointOption,
    region: str | None = RegionOption,
    prefix: str = PrefixOption,
) -> None:
    """Serve the web dashboard: runs, a run's timeline and actions, events, workflows,
    dead letters."""
    try:
        from infra.local.ui import Backend, UiServer, UnsafeAddressError
    except ImportError as error:
        fail(Exit.CONFIG, f"the dashboard needs Flask ({error}): pip install 'stepline[ui]'")
    connection = connect(endpoint, region, prefix)

    @functools.cache
    def application() -> App | None:
        spec = app_spec(connection.store, app)
        return load_app(spec) if spec else None

    try:
        server = UiServer(
            Backend(connection, app_provider=application),
            host=host,
            port=port,
            allow_remote=allow_remote,
        )
    except UnsafeAddressError as error:
        fail(Exit.USAGE, str(error))
    if server.warning:
        typer.echo(server.warning, err=True)
    if server.moved_from is not None:
        typer.echo(f"port {server.moved_from} is taken; using {server.port}", err=True)
    server.start()
    typer.echo(f"Stepline dashboard: {server.url}  (table {connection.settings.table})")
    typer.echo("Press Ctrl-C to stop.")
    sys.stdout.flush()
    _wait_for_stop()
    server.stop()
    typer.echo("stopped")
