"""Assembling the engine from settings: boto3 clients, adapters, the app.

Clients are created lazily, once per process (a Lambda cold start), and only the ones a
handler actually uses: the trigger handler never pays for a Scheduler client.
"""

from __future__ import annotations

import importlib
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config

from engine.events import EventRouter
from engine.lifecycle import Lifecycle
from engine.ports import Clock, Ports
from engine.runner import Runner
from infra.clock import SystemClock
from infra.dynamo import DynamoStore
from infra.eventbridge import EventBridgeBus
from infra.settings import ConfigurationError, Settings
from infra.sqs import SqsWorkQueue
from infra.timers import SqsSchedulerTimers
from infra.visibility import QueueUrls
from sdk import App

# Standard mode retries throttling with backoff and jitter; a few more attempts than the
# default ride out short bursts before the engine gives the message back to SQS.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 6},
    connect_timeout=5,
    read_timeout=20,
)


class Clients:
    """boto3 clients, each created on first use."""

    def __init__(
        self, settings: Settings, session: Any | None = None, config: Config = CLIENT_CONFIG
    ) -> None:
        self._settings = settings
        self._session = session
        self._config = config

    def _client(self, service: str) -> Any:
        factory = self._session.client if self._session is not None else boto3.client
        kwargs: dict[str, Any] = {"config": self._config}
        if self._settings.region:
            kwargs["region_name"] = self._settings.region
        if self._settings.endpoint_url:
            kwargs["endpoint_url"] = self._settings.endpoint_url
        return factory(service, **kwargs)

    @cached_property
    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    @cached_property
    def sqs(self) -> Any:
        return self._client("sqs")

    @cached_property
    def scheduler(self) -> Any:
        return self._client("scheduler")

    @cached_property
    def events(self) -> Any:
        return self._client("events")


class _Lazy:
    """An adapter built on first use, so a handler creates only the clients it calls
    (the trigger handler never pays for a Scheduler client)."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build

    @cached_property
    def target(self) -> Any:
        return self._build()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


def _work_queue(clients: Clients, settings: Settings) -> SqsWorkQueue:
    settings.require_queue()
    return SqsWorkQueue(clients.sqs, settings.work_queue_url)


@dataclass
class Services:
    """Everything a handler needs, built once per process."""

    app: App
    settings: Settings
    clients: Clients
    ports: Ports
    runner: Runner
    router: EventRouter
    lifecycle: Lifecycle
    queue_urls: QueueUrls

    @property
    def store(self) -> DynamoStore:
        return self.ports.store  # type: ignore[return-value]


def build_services(
    app: App,
    settings: Settings,
    *,
    clock: Clock | None = None,
    session: Any | None = None,
    clients: Clients | None = None,
    ports_hook: Callable[[Ports], Ports] | None = None,
) -> Services:
    """Wire adapters to the engine. `ports_hook` may wrap the ports (timer ledger, faults)."""
    clock = clock or SystemClock()
    clients = clients or Clients(settings, session)
    store: Any = _Lazy(lambda: DynamoStore(clients.dynamodb, settings.table))
    ports = Ports(
        store=store,
        index=store,
        events=store,
        queue=_Lazy(lambda: _work_queue(clients, settings)),
        timers=_Lazy(
            lambda: SqsSchedulerTimers(
                sqs=clients.sqs,
                scheduler=clients.scheduler,
                queue_url=settings.work_queue_url,
                queue_arn=settings.queue_arn,
                group=settings.schedule_group,
                role_arn=settings.scheduler_role_arn,
                clock=clock,
            )
        ),
        bus=_Lazy(
            lambda: EventBridgeBus(
                clients.events, bus=settings.event_bus, source=settings.event_source
            )
        ),
        clock=clock,
    )
    if ports_hook is not None:
        ports = ports_hook(ports)
    engine_settings = settings.engine_settings()
    # A random holder token per process: leases say which process holds a run.
    runner = Runner(app, ports, engine_settings, holder=secrets.token_hex(8))
    lifecycle = runner.lifecycle
    router = EventRouter(app, ports, lifecycle, engine_settings)
    return Services(
        app=app,
        settings=settings,
        clients=clients,
        ports=ports,
        runner=runner,
        router=router,
        lifecycle=lifecycle,
        queue_urls=QueueUrls(
            lambda: clients.sqs,
            endpoint=settings.endpoint_url,
            known={settings.queue_arn: settings.work_queue_url} if settings.work_queue_url else {},
        ),
    )


def load_app(spec: str | None) -> App:
    """Import `module:attribute` and return the App it names, or explain what is wrong."""
    if not spec:
        raise ConfigurationError(
            "no app given: set STEPLINE_APP (or pass --app) to 'module:attribute', "
            "e.g. 'examples.shop:app'"
        )
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "app"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise ConfigurationError(
            f"could not import {module_name!r} for app {spec!r}: {type(error).__name__}: {error}"
        ) from error
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        raise ConfigurationError(
            f"{spec!r}: {module_name} has no App named {attribute!r} (found {type(app).__name__})"
        )
    return app
