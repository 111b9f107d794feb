"""Serving the dashboard: werkzeug's threaded WSGI server in a background thread.

`UiServer` listens on 127.0.0.1 unless told otherwise, and refuses any other address
without `allow_remote` (anyone who can reach it could read every run's data; actions
still need the per-start token). When the port is taken it takes a free one and says so.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import threading

from werkzeug.serving import BaseWSGIServer, make_server

from infra.local.ui.app import create_app
from infra.local.ui.backend import Backend

DEFAULT_PORT = 8288


class UnsafeAddressError(ValueError):
    """Listening beyond this machine was asked for without saying so explicitly."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_address(host: str, *, allow_remote: bool) -> str | None:
    """None if `host` is safe; the warning to print if allowed; UnsafeAddressError if not."""
    if is_loopback(host):
        return None
    if not allow_remote:
        raise UnsafeAddressError(
            f"refusing to serve the dashboard on {host}: anyone who can reach that address "
            "could read every run's data. Use 127.0.0.1 (the default), or pass --allow-remote "
            "if you mean it."
        )
    return (
        f"WARNING: the dashboard listens on {host}: anyone who can reach it can read every "
        "run's data (actions still need the token in its pages). Put it behind a proxy with "
        "authentication."
    )


class UiServer:
    def __init__(
        self,
        backend: Backend,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        allow_remote: bool = False,
        token: str | None = None,
    ) -> None:
        self.warning = check_address(host, allow_remote=allow_remote)
        self.token = token or secrets.token_urlsafe(32)
        self.host = host
        self._backend = backend
        self._allow_remote = allow_remote
        self.moved_from: int | None = None
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        try:
            self._server = self._make(port)
        except OSError:
            if port == 0:
                raise
            self.moved_from = port
            self._server = self._make(0)
        self.port = self._server.server_port
        self._thread: threading.Thread | None = None

    def _make(self, port: int) -> BaseWSGIServer:
        # Bound first (to learn the port), then the app is built with the hosts it serves.
        server = make_server(self.host, port, lambda env, start: [], threaded=True)
        real = server.server_port
        hosts: set[str] = set()
        if not self._allow_remote:
            names = {self.host, "127.0.0.1", "localhost", "[::1]"}
            hosts = {f"{name}:{real}" for name in names}
        server.app = create_app(self._backend, token=self.token, hosts=hosts)
        return server

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        if ":" in shown and not shown.startswith("["):
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}"

    def start(self) -> UiServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="stepline-ui", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
