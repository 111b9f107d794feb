"""LocalRuntime: the whole of Stepline on embedded moto, with a virtual clock.

    from infra.local import LocalRuntime
    with LocalRuntime(app) as rt:
        [run_id] = rt.send(Event(name="user/signup", data={"userId": "u1"}))
        rt.advance(timedelta(hours=25))
        rt.run(run_id).status, rt.history(run_id)

It creates the same resources a deployment has (table, queues with DLQs, EventBridge
rules for the event names the app uses, schedule group) inside `moto.mock_aws`, and
drives the real Lambda handlers with Lambda-shaped SQS events, as the event source
mappings would on AWS. Nothing is shortcut: `send` puts the event on moto's EventBridge
bus, whose rules deliver it, once, to the events queue (an event no workflow uses is
not delivered at all).

Time is virtual. The process clock is frozen at the virtual time (time-machine), so
moto's SQS delays and the engine agree about "now"; `advance` moves it forward from
one due timer or cron tick to the next, firing each and draining the queues before
moving on. A week of sleeps takes milliseconds. moto never fires EventBridge Scheduler
schedules, so the runtime finds the due ones, sends their input to the work queue and
deletes them, as Scheduler would; the app's Crons are recurring schedules in the same
group (synced on entry and by `deploy`), fired at their ticks (infra/local/cron_pump.py).

`deploy(new_app)` swaps in a new version of the app, as a deploy of new code would:
runs in flight carry on under it (`ctx.patched`, `stepline check`).

A message a handler fails goes back on its queue at once (rather than after the
visibility timeout), so redelivery and the dead-letter queue behave as on AWS, only
sooner. The handlers are the Lambda functions' bodies (infra/lambda_functions.py), which
infra/local/lambda_service.py hands each batch as the Lambda service would.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Self

from engine.callbacks import Callbacks
from engine.clock import ManualClock
from engine.events import EventRouter
from engine.ids import run_id_for
from engine.model import EventOutcome, RunStatus
from engine.ports import Ports, Timers
from engine.runner import Runner
from engine.views import RunView, StepView, history_of
from infra.clients import Clients
from infra.event_rules import stack_rules
from infra.eventbridge import EventBridgeBus
from infra.lambda_batch import LambdaFunction
from infra.lambda_functions import BY_QUEUE
from infra.local import lambda_service
from infra.local.cron_pump import CronPump
from infra.local.runtime_control import RunControlMixin
from infra.resources import create_resources, sync_with_app
from infra.settings import DEFAULT_EVENT_BUS, Settings
from infra.wiring import Services, build_services, event_bus
from sdk import App, Event

if TYPE_CHECKING:
    from moto.core.models import MockAWS
    from time_machine import Traveller, travel

REGION = lambda_service.REGION


log = logging.getLogger("stepline.local")


class LocalRuntimeError(RuntimeError):
    pass


class _TimerLedger:
    """Wraps the real timers and notes when each wake-up will fire, so that `advance`
    knows which instants to stop at (SQS gives no way to peek at delayed messages)."""

    def __init__(self, inner: Timers, clock: ManualClock) -> None:
        self._inner = inner
        self._clock = clock
        self._due: list[datetime] = []
        self._lock = threading.Lock()

    def arm(self, run_id: str, at: datetime) -> None:
        now = self._clock.now()
        # When it will actually fire: SQS delays and Scheduler times are whole seconds.
        by_delay = now + timedelta(seconds=max(0, math.ceil((at - now).total_seconds())))
        whole_second = at.replace(microsecond=0) + timedelta(seconds=1 if at.microsecond else 0)
        fires = max(by_delay, whole_second)
        with self._lock:
            heapq.heappush(self._due, fires)
        self._inner.arm(run_id, at)

    def disarm(self, run_id: str, at: datetime) -> None:
        self._inner.disarm(run_id, at)

    def next_after(self, now: datetime) -> datetime | None:
        with self._lock:
            while self._due and self._due[0] <= now:
                heapq.heappop(self._due)
            return self._due[0] if self._due else None


class LocalRuntime(RunControlMixin):
    """Stepline on embedded moto with virtual time; see the module docstring.

    Pause, resume and timers: infra/local/runtime_control.py."""

    def __init__(
        self,
        app: App,
        *,
        start: datetime | None = None,
        seed: int = 0,
        prefix: str = "stepline",
        lambda_timeout: timedelta = timedelta(minutes=15),
        settings: dict[str, Any] | None = None,
        ports_hook: Callable[[Ports], Ports] | None = None,
        max_batches: int = 20_000,
        deliveries_per_message: int = 1,
    ) -> None:
        self.app = app
        self._start = start
        self._seed = seed
        self._prefix = prefix
        self._lambda_timeout = lambda_timeout
        self._settings_overrides = settings or {}
        self._ports_hook = ports_hook
        self._max_batches = max_batches
        # SQS delivers at least once; >1 hands every batch to its handler that many times.
        self._deliveries_per_message = deliveries_per_message
        self._entered = False
        self._routed: frozenset[str] = frozenset()
        self._mock: MockAWS | None = None
        self._travel: travel | None = None
        #: How many SQS messages each handler has been given, by queue role.
        self.deliveries: dict[str, int] = {"events": 0, "work": 0}
        #: Batches in which a handler raised instead of reporting item failures.
        self.crashed_batches = 0
        #: Wall seconds of every handler invocation, by queue role (what Lambda bills).
        self.invocation_seconds: dict[str, list[float]] = {role: [] for role in self.deliveries}

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            import time_machine
            from moto import mock_aws
        except ImportError as error:
            raise LocalRuntimeError(
                f"LocalRuntime needs moto and time-machine ({error}); "
                "install them with: pip install 'stepline[local]'"
            ) from None
        import boto3

        start = self._start or datetime.now(UTC)
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self._mock = mock_aws()
        self._mock.start()
        try:
            self._travel = time_machine.travel(start, tick=False)
            self._coordinates: Traveller = self._travel.start()
            self.clock = ManualClock(start, seed=self._seed)
            session = boto3.session.Session(
                region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
            )
            self.clients = Clients(Settings(region=REGION), session)
            # The bus a deployed stack has by default (`stepline`), unless overridden.
            bus = self._settings_overrides.get("event_bus", DEFAULT_EVENT_BUS)
            created = create_resources(self.clients, self._prefix, bus=bus)
            self.queue_urls = created.queue_urls
            self.dlq_urls = created.dlq_urls
            self.settings = created.settings.model_copy(
                # One message at a time unless asked: virtual-time tests stay deterministic
                # (Lambda and the workers handle different runs of a batch concurrently).
                update={"region": REGION, "batch_concurrency": 1, **self._settings_overrides}
            )
            self._queue_arns = {
                self.clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                    "Attributes"
                ]["QueueArn"]: url
                for url in self.queue_urls.values()
            }
            self._arn_of = {url: arn for arn, url in self._queue_arns.items()}
            self.services = build_services(
                self.app,
                self.settings,
                clock=self.clock,
                clients=Clients(self.settings, session),
                ports_hook=self._wrap_ports,
            )
            self._sync_app()
            self._crons = CronPump(
                self.clients.scheduler,
                self.clients.sqs,
                group=self.settings.schedule_group,
                queue_url_of=self._queue_arns,
            )
            self._crons.refresh(start)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self._entered = True
        return self

    def _wrap_ports(self, ports: Ports) -> Ports:
        self._ledger = _TimerLedger(ports.timers, self.clock)
        ports = replace(ports, timers=self._ledger)
        return self._ports_hook(ports) if self._ports_hook else ports

    def _sync_app(self) -> None:
        # The names the app's rules route: a send of one of them needs no look at the bus.
        self._routed = frozenset(sync_with_app(self.clients, self.settings, self.app))

    def deploy(self, app: App) -> None:
        """Run a new version of the app from now on, as a deploy would: runs in flight
        replay their histories against its code, timers and queued messages are kept,
        its Crons' schedules replace the old ones, and the bus's rules route the event
        names it uses."""
        self._require()
        services = self.services
        # The bus port knows which names the deployed app routes: the new app's now.
        ports = replace(services.ports, bus=event_bus(services.clients, services.settings, app))
        services = replace(services, ports=ports)
        runner = Runner(app, services.ports, services.runner.settings)
        self.app = app
        self.services = Services(
            app=app,
            settings=services.settings,
            clients=services.clients,
            ports=services.ports,
            runner=runner,
            router=EventRouter(app, services.ports, runner.lifecycle, services.router.settings),
            lifecycle=runner.lifecycle,
            queue_urls=services.queue_urls,
            callbacks=Callbacks(services.ports, runner.lifecycle, services.router.settings),
        )
        self._sync_app()

    def __exit__(self, *exc_info: object) -> None:
        if self._travel is not None:
            self._travel.stop()
            self._travel = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        self._entered = False

    def _require(self) -> None:
        if not self._entered:
            raise LocalRuntimeError(
                "use LocalRuntime as a context manager: with LocalRuntime(app) as rt:"
            )

    # -- time ----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The virtual time."""
        return self.clock.now()

    def _set_time(self, instant: datetime) -> None:
        if instant <= self.clock.now():
            return
        self.clock.set(instant)
        self._coordinates.move_to(instant)

    def advance(self, delta: timedelta | str) -> None:
        """Move virtual time forward, firing every timer that falls due on the way."""
        from sdk import parse_duration

        self._require()
        target = self.clock.now() + parse_duration(delta, what="advance")
        self.drain()
        while True:
            now = self.clock.now()
            dues = [d for d in (self._ledger.next_after(now), self._crons.next_due(now)) if d]
            due = min(dues) if dues else None
            if due is None or due > target:
                break
            self._set_time(due)
            self.drain()
        self._set_time(target)
        self.drain()

    # -- events --------------------------------------------------------------------------

    def send(self, event: Event, *, source: str = "local") -> list[str]:
        """Put an event on the bus, process everything until idle; returns the runs it started."""
        self._require()
        bus = EventBridgeBus(self.clients.events, bus=self.settings.event_bus, source=source)
        [event_id] = bus.publish([event])
        sent = event.model_copy(update={"id": event_id, "ts": event.ts or self.clock.now()})
        if (
            event.name not in self._routed
            and event.name not in stack_rules(self.clients.events, self.settings).routed_names()
        ):
            log.info(
                "event %s (%s) starts no workflow and reaches no wait: no rule routes %r to "
                "Stepline, as no workflow of app %r uses it (triggers, wait_for_event, "
                "cancel_on)",
                event_id,
                event.name,
                event.name,
                self.app.name,
            )
        self.drain()
        started = []
        for workflow_id in self.services.router.matching_workflows(sent):
            run_id = run_id_for(workflow_id, sent.id)
            if self.services.store.get_run(run_id) is not None:
                started.append(run_id)
        return started

    def outcome(self, event_id: str) -> EventOutcome | None:
        """What the trigger handler did with an event (kept for the lookback window): the
        runs it started, and for each workflow it started nothing for, the control and the
        reason (rate limited, debounced or batched into a run, a duplicate of a run,
        skipped by a singleton, a key expression that failed). None if not processed."""
        self._require()
        return self.services.store.get_outcome(event_id, now=self.clock.now())

    # -- runs ----------------------------------------------------------------------------

    def run(self, run_id: str) -> RunView:
        self._require()
        loaded = self.services.store.load(run_id)
        if loaded is None:
            raise KeyError(f"no run {run_id!r}")
        return RunView.of(loaded.run, loaded.event)

    def history(self, run_id: str) -> list[StepView]:
        self._require()
        loaded = self.services.store.load(run_id)
        if loaded is None:
            raise KeyError(f"no run {run_id!r}")
        return history_of(loaded)

    def runs(
        self, *, workflow: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[RunView]:
        self._require()
        records = self.services.store.list_runs(
            workflow_id=workflow,
            status=RunStatus(status) if status else None,
            limit=limit,
            now=self.clock.now(),
        )
        return [RunView.of(record) for record in records]

    def cancel(self, run_id: str, reason: str = "cancelled by user") -> bool:
        """Cancel a run; False if it had already finished. Processes until idle."""
        self._require()
        cancelled = self.services.lifecycle.cancel(run_id, reason)
        self.drain()
        return cancelled

    def replay(self, run_id: str, *, from_step: str | None = None) -> str:
        """Re-run a finished run as a new run (see Lifecycle.replay); processes until idle."""
        self._require()
        original = self.run(run_id)
        workflow = self.app.get(original.workflow_id)
        if workflow is None:
            raise KeyError(f"app {self.app.name!r} has no workflow {original.workflow_id!r}")
        new_id = self.services.lifecycle.replay(workflow, run_id, from_step=from_step)
        self.drain()
        return new_id

    # -- callbacks (engine/callbacks.py; each raises sdk.CallbackError when refused) -------

    def complete_callback(self, callback_id: str, result: Any = None) -> None:
        """Complete a callback with `result` (JSON); processes until idle."""
        self._require()
        self.services.callbacks.complete(callback_id, result)
        self.drain()

    def fail_callback(
        self, callback_id: str, error_type: str = "CallbackFailed", error_message: str = ""
    ) -> None:
        """Fail a callback: its `result()` raises StepError; processes until idle."""
        self._require()
        self.services.callbacks.fail(
            callback_id, error_type=error_type, error_message=error_message
        )
        self.drain()

    def heartbeat_callback(self, callback_id: str) -> None:
        """Restart a callback's heartbeat timeout; processes until idle."""
        self._require()
        self.services.callbacks.heartbeat(callback_id)
        self.drain()

    def dead_letters(self, role: str = "work") -> list[Any]:
        """Bodies of the messages that reached a queue's dead-letter queue (they stay there):
        parsed when they are JSON, else the text."""
        self._require()
        response = self.clients.sqs.receive_message(
            QueueUrl=self.dlq_urls[role], MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        return [
            json.loads(m["Body"]) if _is_json(m["Body"]) else m["Body"]
            for m in response.get("Messages", [])
        ]

    def dead_letter_count(self, role: str = "work") -> int:
        self._require()
        attributes = self.clients.sqs.get_queue_attributes(
            QueueUrl=self.dlq_urls[role], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    # -- the pump ------------------------------------------------------------------------

    def drain(self) -> int:
        """Deliver queued messages to the handlers and fire due schedules until idle."""
        self._require()
        batches = 0
        while True:
            progressed = False
            for role, handler in BY_QUEUE.items():
                while self._deliver_batch(role, handler):
                    progressed = True
                    batches += 1
                    if batches > self._max_batches:
                        raise LocalRuntimeError(
                            f"queues were still busy after {self._max_batches} batches; a "
                            "run may be looping (check rt.runs() and rt.history())"
                        )
            if self._fire_due_schedules():
                progressed = True
            if not progressed:
                return batches

    def _deliver_batch(self, role: str, handler: LambdaFunction) -> bool:
        url = self.queue_urls[role]
        result = lambda_service.deliver_batch(
            self.clients.sqs,
            queue_url=url,
            queue_arn=self._arn_of[url],
            role=role,
            handler=handler,
            services=self.services,
            lambda_timeout=self._lambda_timeout,
            visibility_timeout=300,
            invocations=self._deliveries_per_message,
        )
        self.deliveries[role] += result.received
        self.crashed_batches += int(result.crashed)
        self.invocation_seconds[role].extend(result.seconds)
        if result.failed:
            lambda_service.retry_now(self.clients.sqs, url, result.failed)
            # moto makes a message visible only once the clock passes its visibility
            # time, and ours is frozen: let a millisecond pass, as it would on AWS.
            self._set_time(self.clock.now() + timedelta(milliseconds=1))
        return result.received > 0

    def _fire_due_schedules(self) -> bool:
        fired = lambda_service.fire_due_schedules(
            self.clients.scheduler,
            self.clients.sqs,
            group=self.settings.schedule_group,
            now=self.clock.now(),
            queue_url_of=self._queue_arns,
        )
        return fired + self._crons.fire_due(self.clock.now()) > 0

    def pending_schedules(self) -> list[str]:
        """Names of the Scheduler schedules not yet fired (long timers)."""
        return lambda_service.list_schedule_names(
            self.clients.scheduler, group=self.settings.schedule_group
        )


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
