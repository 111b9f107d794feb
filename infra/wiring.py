"""Assembling the engine from settings: boto3 clients, adapters, the app.

Clients are created lazily, once per process (a Lambda cold start), and only the ones a
handler actually uses: the events function never pays for a Scheduler client. Every
function reads and writes the table, so the store is built with the services; the
queue, the timers and the bus are built on their first use (`LazyWorkQueue`,
`LazyTimers`, `LazyEventBus`: each implements its port by handing every call to the
adapter it builds once).
"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Protocol, cast

from engine.callbacks import Callbacks
from engine.event_names import routed_event_names
from engine.events import EventRouter
from engine.lifecycle import Lifecycle
from engine.model import WorkMessage
from engine.ports import Clock, Ports, Timers, WorkQueue
from engine.runner import Runner
from infra.clients import Clients
from infra.clock import SystemClock
from infra.dynamo import DynamoStore
from infra.event_rules import stack_rules
from infra.eventbridge import EventBridgeBus
from infra.settings import ConfigurationError, Settings
from infra.sqs import SqsWorkQueue
from infra.timers import SqsSchedulerTimers
from infra.visibility import QueueUrls
from sdk import App, Event

if TYPE_CHECKING:
    from boto3.session import Session

log = logging.getLogger("stepline.events")


class LazyWorkQueue:
    """The WorkQueue port, built on its first message: the SQS adapter needs
    STEPLINE_WORK_QUEUE_URL, which only a process that enqueues has to have."""

    def __init__(self, build: Callable[[], WorkQueue]) -> None:
        self._build = build

    @cached_property
    def adapter(self) -> WorkQueue:
        return self._build()

    def enqueue(self, message: WorkMessage, *, delay_seconds: int = 0) -> None:
        self.adapter.enqueue(message, delay_seconds=delay_seconds)


class LazyTimers:
    """The Timers port, built on its first timer: only then are an SQS and a Scheduler
    client created (the events function arms timers only for flow controls, engine/flow/)."""

    def __init__(self, build: Callable[[], Timers]) -> None:
        self._build = build

    @cached_property
    def adapter(self) -> Timers:
        return self._build()

    def arm(self, run_id: str, at: datetime) -> None:
        self.adapter.arm(run_id, at)

    def disarm(self, run_id: str, at: datetime) -> None:
        self.adapter.disarm(run_id, at)


class _Routes(Protocol):
    def route(self, name: str) -> None: ...


class LazyEventBus:
    """The EventBus port: publishing through EventBridge (`EventBridgeBus`) and routing
    names through the stack's rules (`EventRules`), each built on its first use."""

    def __init__(
        self, publisher: Callable[[], EventBridgeBus], rules: Callable[[], _Routes]
    ) -> None:
        self._publisher = publisher
        self._rules = rules

    @cached_property
    def adapter(self) -> EventBridgeBus:
        return self._publisher()

    @cached_property
    def rules(self) -> _Routes:
        return self._rules()

    def publish(self, events: Sequence[Event]) -> list[str]:
        return self.adapter.publish(events)

    def route(self, event_name: str) -> None:
        self.rules.route(event_name)


def event_bus(clients: Clients, settings: Settings, app: App) -> LazyEventBus:
    """The EventBus port for `app`: it knows the names the app's deploy routed."""
    return LazyEventBus(
        lambda: EventBridgeBus(
            clients.events, bus=settings.event_bus, source=settings.event_source
        ),
        lambda: (
            stack_rules(clients.events, settings, routed_event_names(app))
            if settings.events_queue_arn
            else _Unrouted(routed_event_names(app))
        ),
    )


class _Unrouted:
    """Routing without STEPLINE_EVENTS_QUEUE_ARN: says once per name what is missing."""

    def __init__(self, routed: Sequence[str]) -> None:
        self._warned = set(routed)

    def route(self, name: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning(
                "a run waits for events named %r, which the app's code does not spell out, "
                "and STEPLINE_EVENTS_QUEUE_ARN is not set: no rule routes them to Stepline. "
                "Set it (template.yaml does), or name the event with a literal in the "
                "workflow so that the deploy routes it",
                name,
            )


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
    callbacks: Callbacks

    @property
    def store(self) -> DynamoStore:
        """The store port, for the reads and admin calls beyond it (`list_runs`, prefixes).

        It is the DynamoStore `build_services` made, or what a `ports_hook` wrapped it in
        (tests' fault plans and interceptors, which hand every call on to it).
        """
        return cast(DynamoStore, self.ports.store)


def build_services(
    app: App,
    settings: Settings,
    *,
    clock: Clock | None = None,
    session: Session | None = None,
    clients: Clients | None = None,
    ports_hook: Callable[[Ports], Ports] | None = None,
) -> Services:
    """Wire adapters to the engine. `ports_hook` may wrap the ports (timer ledger, faults)."""
    clock = clock or SystemClock()
    clients = clients or Clients(settings, session)
    store = DynamoStore(clients.dynamodb, settings.table)
    ports = Ports(
        store=store,
        index=store,
        events=store,
        queue=LazyWorkQueue(lambda: _work_queue(clients, settings)),
        timers=LazyTimers(
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
        bus=event_bus(clients, settings, app),
        clock=clock,
        flow=store,
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
        callbacks=Callbacks(ports, lifecycle, engine_settings),
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
