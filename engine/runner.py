"""The engine: advance the run a work-queue message names.

Every message is an idempotent "look at this run". `Runner.handle`:

1. loads the run and its history (one strongly consistent Query);
2. admits the message or drops it: a finished run, a run another live delivery is
   advancing (its lease), or a sleeping run whose wake-up is not due are left alone.
   A timer that fires early is re-armed for the rest of the delay, and the redelivery
   of the message behind the run's latest transition re-does that transition's side
   effects (arm the timer, notify the parent), which a crash may have cut off;
3. claims the run (RUNNING, version+1, lease owned by this delivery);
4. replays the workflow (`Interpreter`) under a `LeaseKeeper` (engine/lease.py), which
   renews the lease while it works and stops it before a new step once the run was
   cancelled or claimed elsewhere, and applies its outcome with one conditional write
   of the run item, then performs the side effects (timer, continue message, parent
   notification, on_failure run, disarming a wake-up the run no longer needs).

A lease is taken over only when its holder is gone: it expired (the holder stopped
renewing it), or the holder ran in this very process and has finished or crashed. A
redelivery of the holder's own message while the holder lives (its visibility heartbeat
failed) is not dropped, which could strand the run if the holder died next: it is
replaced by a "lease" poke that comes back when the lease would expire.

If the run item changed while the workflow ran (an event resolved a wait, a child
finished), the write conflicts; the runner reloads and replays again, so the new
information is never lost. If the run was cancelled meanwhile it stops.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import os
import threading
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any

from engine.codec import to_stored_json
from engine.control import let_go_after_pause
from engine.errors import (
    ErrorType,
    ItemTooLargeError,
    RunConflict,
    StepOutputError,
    TransientError,
)
from engine.flow.gate import FlowGate, Holding, Prepared
from engine.interpreter import Interpreter
from engine.lease import LeaseKeeper
from engine.lifecycle import Lifecycle
from engine.logcontext import bind, log_context, redacting, remember
from engine.matching import expression_budget
from engine.model import (
    Delivery,
    ErrorInfo,
    Lease,
    RunRecord,
    RunStatus,
    WorkMessage,
)
from engine.outcomes import Abandoned, Completed, ContinuedAsNew, Failed, Outcome, Suspended
from engine.plugins import Plugins
from engine.ports import LoadedRun, Ports
from engine.settings import HISTORY_WARNING_STEPS, EngineSettings
from sdk import App, Workflow

log = logging.getLogger("stepline.engine")


class Admission(Enum):
    RUN = "run"
    DROP = "drop"
    REDO = "redo"
    REARM = "rearm"
    HELD = "held"


_runners = itertools.count(1)


class Runner:
    def __init__(
        self,
        app: App,
        ports: Ports,
        settings: EngineSettings | None = None,
        *,
        holder: str | None = None,
    ) -> None:
        self.app = app
        self.ports = ports
        self.settings = settings or EngineSettings()
        self.lifecycle = Lifecycle(ports)
        # Flow controls: timeouts, the start controls, concurrency slots (engine/flow/).
        self.flow = FlowGate(ports, self.lifecycle, self.settings)
        # Names this engine instance in the leases it takes. infra passes a random token
        # (a Lambda's pid is the same in every container); tests get a distinct default.
        self.holder = holder or f"{os.getpid()}-{next(_runners)}"
        # Claims this instance is advancing right now: (run id, message id, receive count),
        # counted (two threads handed the very same delivery must not unregister each other).
        self._live: collections.Counter[tuple[str, str, int]] = collections.Counter()
        self._live_lock = threading.Lock()

    def handle(
        self,
        message: WorkMessage,
        delivery: Delivery,
        remaining_time: Callable[[], float],
    ) -> None:
        token = log_context.set({**log_context.get(), "run_id": message.run_id})
        try:
            with (
                redacting(self.settings.redact_fields),
                expression_budget(f"run {message.run_id}"),
            ):
                self._handle(message, delivery, remaining_time)
        finally:
            log_context.reset(token)

    def _handle(
        self, message: WorkMessage, delivery: Delivery, remaining_time: Callable[[], float]
    ) -> None:
        loaded = self.ports.store.load(message.run_id)
        if loaded is None:
            log.error(
                "work message %s (%s) names run %s, which does not exist: it was deleted or "
                "never created. Dropping the message.",
                delivery.message_id,
                message.reason,
                message.run_id,
            )
            return
        run = loaded.run
        bind(function_id=run.workflow_id)
        if len(loaded.steps) >= HISTORY_WARNING_STEPS and not run.status.terminal:
            log.warning(
                "run %s has %d recorded steps: every resume loads and replays them all, "
                "which slows as the history grows; carry long-lived work on with "
                "ctx.continue_as_new(data)",
                run.run_id,
                len(loaded.steps),
            )
        _remember_run(loaded, self.settings)
        now = self.ports.clock.now()
        if self.flow.cancel_if_overdue(loaded, now):
            return
        admission = self._admit(run, message, delivery, now)
        if admission is Admission.DROP:
            log.debug("run %s is %s; nothing to do for %s", run.run_id, run.status, message.reason)
            self.flow.on_stray(run, self.app.get(run.workflow_id), message)
            return
        if admission is Admission.REARM:
            assert run.wake_at is not None
            log.info("timer for run %s fired early; re-arming for %s", run.run_id, run.wake_at)
            self.ports.timers.arm(run.run_id, run.wake_at)
            return
        if admission is Admission.HELD:
            assert run.lease is not None
            delay = math.ceil((run.lease.expires_at - now).total_seconds()) + 1
            log.warning(
                "run %s is being advanced by a live invocation (%s); looking again in %ds",
                run.run_id,
                run.lease.message_id,
                delay,
            )
            self.ports.queue.enqueue(
                WorkMessage(run_id=run.run_id, reason="lease"), delay_seconds=max(1, delay)
            )
            return
        if admission is Admission.REDO:
            log.info(
                "redelivery for run %s: re-doing the side effects of %s", run.run_id, run.status
            )
            self._side_effects(loaded)
            return
        workflow = self.app.get(run.workflow_id)
        first_invocation = run.status is RunStatus.QUEUED and not loaded.steps
        if (
            workflow is not None
            and first_invocation
            and self.lifecycle.cancel_started_run_if_event_seen(loaded, workflow)
        ):
            return
        prepared = self.flow.prepare(loaded, workflow, message, now)
        if prepared is None:
            return  # it waits for a flow control (engine/flow/gate.py)
        claimed = run.model_copy(
            update={
                "status": RunStatus.RUNNING,
                "version": run.version + 1,
                "updated_at": now,
                "lease": Lease(
                    message_id=delivery.message_id,
                    receive_count=delivery.receive_count,
                    expires_at=now + self.settings.lease_duration,
                    holder=self.holder,
                ),
                "last_message_id": delivery.message_id,
                "invoked_at": now,
                **prepared.update,
            }
        )
        # Registered as live before the claim is written: a delivery in this process that
        # sees the claim must never take the holder for gone in between.
        claim = (run.run_id, delivery.message_id, delivery.receive_count)
        with self._live_lock:
            self._live[claim] += 1
        try:
            try:
                self.flow.claim(loaded, claimed, prepared)
            except RunConflict:
                log.debug("run %s changed before it could be claimed; leaving it", run.run_id)
                return
            loaded.run = claimed
            holding = self._flow_start(loaded, workflow, run, prepared, delivery)
            if holding is None:
                return
            plugins = Plugins.of(
                self.app.plugins,
                run_id=run.run_id,
                workflow_id=run.workflow_id,
                first=first_invocation,
            )
            with LeaseKeeper(
                self.ports.store,
                self.ports.clock,
                claimed,
                self.settings,
                renew_also=holding.renew,
            ) as keeper:
                try:
                    if plugins is None:
                        self._advance(loaded, delivery, remaining_time, keeper, None)
                    else:
                        self._advance_reported(loaded, delivery, remaining_time, keeper, plugins)
                except Exception:
                    holding.release()
                    raise
            # Also when it suspended: a run that sleeps or waits holds no slot.
            holding.release()
        finally:
            with self._live_lock:
                self._live[claim] -= 1
                if not self._live[claim]:
                    del self._live[claim]

    def _flow_start(
        self,
        loaded: LoadedRun,
        workflow: Workflow | None,
        before: RunRecord,
        prepared: Prepared,
        delivery: Delivery,
    ) -> Holding | None:
        """After the claim: what the start controls changed, then the concurrency slots.
        None when the run does not go on now (it failed, or waits for a slot)."""
        if prepared.event is not None:
            loaded.event = prepared.event
        if prepared.batch_size is not None and len(loaded.batch) < prepared.batch_size:
            # Events that joined between the load and the seal.
            reloaded = self.ports.store.load(loaded.run.run_id)
            if reloaded is not None:
                loaded.batch = reloaded.batch
        if prepared.fail is not None:
            self._apply(loaded, Failed(prepared.fail))
            return None
        holding = self.flow.acquire(loaded, workflow, before)
        flow = loaded.run.flow
        newly_due = before.flow is None or before.flow.finish_by is None or delivery.is_redelivery
        if holding is not None and flow is not None and flow.finish_by is not None and newly_due:
            self.ports.timers.arm(loaded.run.run_id, flow.finish_by)
        return holding

    def _admit(
        self, run: RunRecord, message: WorkMessage, delivery: Delivery, now: datetime
    ) -> Admission:
        redelivered_transition = (
            delivery.is_redelivery and run.last_message_id == delivery.message_id
        )
        if run.status.terminal:
            return Admission.REDO if redelivered_transition else Admission.DROP
        if run.status is RunStatus.PAUSED:
            # What the message announced is in the records; resuming sends a new one.
            return Admission.DROP
        if run.status is RunStatus.RUNNING:
            lease = run.lease
            if lease is None or lease.expires_at <= now:
                return Admission.RUN
            if lease.holder == self.holder:
                with self._live_lock:
                    holder_alive = (
                        run.run_id,
                        lease.message_id,
                        lease.receive_count,
                    ) in self._live
                if not holder_alive:
                    # The holder ran in this process and is gone (it crashed, or a
                    # BaseException ended it): nobody else will finish its work.
                    return Admission.RUN
            if lease.message_id == delivery.message_id or message.reason == "lease":
                # The holder lives (or may, in another process): never run beside it, but
                # keep a message that will look again once its lease would have expired.
                return Admission.HELD
            return Admission.DROP
        if run.status is RunStatus.QUEUED:
            return Admission.RUN
        if run.wake_at is not None and run.wake_at <= now:
            return Admission.RUN
        if redelivered_transition:
            return Admission.REDO
        if message.reason == "timer" and message.at is not None and message.at == run.wake_at:
            return Admission.REARM
        return Admission.DROP

    def _advance_reported(
        self,
        loaded: LoadedRun,
        delivery: Delivery,
        remaining_time: Callable[[], float],
        keeper: LeaseKeeper,
        plugins: Plugins,
    ) -> None:
        """`_advance`, between the plugins' invocation hooks (engine/plugins.py)."""
        plugins.invocation_start()
        try:
            status = self._advance(loaded, delivery, remaining_time, keeper, plugins)
        except Exception as error:
            plugins.invocation_end("ERROR", ErrorInfo.from_exception(error, with_traceback=False))
            raise
        plugins.invocation_end(status, loaded.run.error if status == "FAILED" else None)

    def _advance(
        self,
        loaded: LoadedRun,
        delivery: Delivery,
        remaining_time: Callable[[], float],
        keeper: LeaseKeeper,
        plugins: Plugins | None,
    ) -> str:
        """Replay and apply the outcome; returns the run's status after (or ABANDONED)."""
        for _ in range(self.settings.max_reloads):
            outcome = self._execute(loaded, remaining_time, keeper, plugins)
            if isinstance(outcome, Abandoned):
                log.info("run %s: %s; stopping this invocation", loaded.run.run_id, outcome.reason)
                if keeper.cancelled:
                    # Waits or children this invocation made after the cancel's clean-up.
                    self.lifecycle.clean_up_cancelled(loaded.run.run_id)
                elif keeper.paused:
                    let_go_after_pause(self.ports, loaded.run.run_id, keeper.claim)
                return "ABANDONED"
            try:
                self._apply(loaded, outcome)
                return loaded.run.status.value
            except RunConflict as conflict:
                current = conflict.current
                if current is None:
                    return "ABANDONED"
                if current.status is RunStatus.CANCELLED:
                    log.info("run %s was cancelled while it ran", current.run_id)
                    self.lifecycle.clean_up_cancelled(current.run_id)
                    return current.status.value
                if current.status is RunStatus.PAUSED:
                    log.info("run %s was paused while it ran; resuming replays it", current.run_id)
                    let_go_after_pause(self.ports, current.run_id, keeper.claim)
                    return current.status.value
                if current.status.terminal or not keeper.holds(current):
                    # Another delivery claimed it (perhaps a redelivery of this very
                    # message, after our lease lapsed): it carries on, not us.
                    return "ABANDONED"
                log.debug(
                    "run %s changed while it ran (an event or child); replaying", current.run_id
                )
                reloaded = self.ports.store.load(current.run_id)
                if reloaded is None:
                    return "ABANDONED"
                _remember_run(reloaded, self.settings)
                if isinstance(outcome, Suspended):
                    # The replay goes past where this one stopped: what it finds there
                    # (what changed the run) is new, as after a suspension.
                    reloaded.run = reloaded.run.model_copy(
                        update={"suspended_at": tuple(p.step_key for p in outcome.pending)}
                    )
                loaded = reloaded
        # Giving up here must not ack the message: the run still holds this delivery's
        # lease, and the pokes that kept changing it were dropped because of that lease.
        # Failing the message makes SQS redeliver it, and the redelivery takes over.
        raise TransientError(
            f"run {loaded.run.run_id} changed {self.settings.max_reloads} times during one "
            "invocation; the message will be redelivered to continue it"
        )

    def _execute(
        self,
        loaded: LoadedRun,
        remaining_time: Callable[[], float],
        keeper: LeaseKeeper,
        plugins: Plugins | None = None,
    ) -> Outcome:
        run = loaded.run
        workflow = self.app.get(run.workflow_id)
        if workflow is None:
            return Failed(
                ErrorInfo(
                    type=ErrorType.UNKNOWN_WORKFLOW,
                    message=f"run {run.run_id} belongs to workflow {run.workflow_id!r}, which "
                    f"app {self.app.name!r} does not define. Deploy code that defines it, or "
                    "cancel the run.",
                )
            )
        return Interpreter(
            app=self.app,
            workflow=workflow,
            loaded=loaded,
            ports=self.ports,
            lifecycle=self.lifecycle,
            settings=self.settings,
            remaining_time=remaining_time,
            keeper=keeper,
            plugins=plugins,
        ).execute()

    def _apply(self, loaded: LoadedRun, outcome: Outcome) -> None:
        run = loaded.run
        now = self.ports.clock.now()
        update: dict[str, Any] = {
            "version": run.version + 1,
            "updated_at": now,
            "lease": None,
            "wake_at": None,
        }
        if isinstance(outcome, Completed):
            try:
                output = self._encode_output(outcome.output)
                update.update(status=RunStatus.COMPLETED, output=output, ended_at=now)
            except StepOutputError as error:
                outcome = Failed(ErrorInfo.from_exception(error, with_traceback=False))
        if isinstance(outcome, ContinuedAsNew):
            # The continuation first (idempotent on its id): a crash before the write
            # below replays into the same call, and the run never ends without it.
            workflow = self.app.get(run.workflow_id)
            assert workflow is not None  # _execute fails a run of an unknown workflow
            continued = self.lifecycle.continue_as_new(workflow, loaded, outcome.data)
            update.update(status=RunStatus.COMPLETED, continued_as=continued, ended_at=now)
        elif isinstance(outcome, Failed):
            update.update(status=RunStatus.FAILED, error=outcome.error, ended_at=now)
        elif isinstance(outcome, Suspended):
            if any(pending.kind == "continue" for pending in outcome.pending):
                update.update(status=RunStatus.QUEUED)
            else:
                wakes = [p.wake_at for p in outcome.pending if p.wake_at is not None]
                waiting = any(p.waiting for p in outcome.pending)
                update.update(
                    status=RunStatus.WAITING if waiting else RunStatus.SLEEPING,
                    wake_at=min(wakes) if wakes else None,
                )
        # The wake-up armed for the previous suspension stays armed only if it is still
        # the one the run needs; otherwise it is disarmed (below) instead of firing for
        # nothing (a wait resolved by its event before its timeout, say).
        update["armed_at"] = update["wake_at"]
        # Where this invocation stopped: the next one replays up to there, and what the
        # code does after it is new (its log lines are written then, see engine/session.py).
        update["suspended_at"] = (
            tuple(p.step_key for p in outcome.pending) if isinstance(outcome, Suspended) else ()
        )
        new = run.model_copy(update=update)
        try:
            self.ports.store.write_run(new, expected_version=run.version)
        except ItemTooLargeError as error:
            # Outputs and errors are capped so that this cannot happen; if it does, the
            # run fails with an error naming the limit rather than its message being
            # retried into the dead-letter queue.
            new = run.model_copy(
                update={
                    **update,
                    "status": RunStatus.FAILED,
                    "output": None,
                    "wake_at": None,
                    "ended_at": now,
                    "error": ErrorInfo(
                        type=ErrorType.ITEM_TOO_LARGE,
                        message=f"run {run.run_id} could not be recorded: its item is over "
                        f"DynamoDB's 400 KB item size limit ({error}). Keep the workflow's "
                        f"return value under {self.settings.max_output_bytes:,} bytes of JSON.",
                    ),
                }
            )
            self.ports.store.write_run(new, expected_version=run.version)
        loaded.run = new
        previous = run.armed_at
        if previous is not None and previous != new.wake_at and previous > now:
            self.ports.timers.disarm(run.run_id, previous)
        if new.status is RunStatus.FAILED:
            log.warning("run %s failed: %s", run.run_id, new.error)
        else:
            log.info("run %s is %s", run.run_id, new.status)
        self._side_effects(loaded)

    def _encode_output(self, output: Any) -> Any:
        return to_stored_json("the workflow", output, max_bytes=self.settings.max_output_bytes)

    def _side_effects(self, loaded: LoadedRun) -> None:
        """What must follow the run's latest transition; safe to repeat."""
        run = loaded.run
        if run.status is RunStatus.QUEUED:
            self.ports.queue.enqueue(WorkMessage(run_id=run.run_id, reason="continue"))
        elif run.status in (RunStatus.SLEEPING, RunStatus.WAITING):
            if run.wake_at is not None:
                self.ports.timers.arm(run.run_id, run.wake_at)
        elif run.status.terminal:
            self.ports.store.delete_subscriptions(loaded.subscriptions)
            self.flow.finished(run)
            if run.continued_as is not None:
                # Its continuation carries its parent, which the last run of the chain
                # notifies; here only make sure the continuation got its start message.
                self.lifecycle.ensure_started(run.continued_as)
            elif run.parent is not None:
                self.lifecycle.notify_parent(run)
            workflow = self.app.get(run.workflow_id)
            if run.status is RunStatus.FAILED and workflow is not None:
                self.lifecycle.start_failure_handler(workflow, run, loaded.event)


def _remember_run(loaded: LoadedRun, settings: EngineSettings) -> None:
    """Note the redacted values a run brings in: its trigger and recorded outputs."""
    if not settings.redact_fields:
        return
    remember(loaded.event.data)
    for step in loaded.steps.values():
        if step.output is not None:
            remember(step.output)
