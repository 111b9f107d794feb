"""Run control: pause and resume a run or a whole workflow, and fire a run's timers now.

Contract (DESIGN.md, "Run control"):

- `pause(run_id)` makes a run that has not finished `PAUSED` (version+1, its lease
  dropped) and notes what it was (`RunRecord.pause`). An invocation advancing it learns
  it at its next step gate (engine/lease.py, at most `control_interval` = 0.5 s plus one
  read after the pause is recorded) and stops before starting another step; a step
  already executing finishes and is recorded.
- While it is paused, work messages for it are dropped (engine/runner.py), but nothing
  they announced is lost: a timer's time is in the step records, an event that resolves
  one of its waits settles the wait's step record, a child's result settles the parent's
  `invoke` step, and a cancel still cancels it. Those writers mark the run due (`poke`),
  which a paused run keeps.
- `resume(run_id)` makes it runnable again and sends it a message; its invocation
  replays the history and applies whatever arrived meanwhile (an elapsed sleep goes on,
  a settled wait returns its event, a wait past its timeout times out). A run paused
  while an invocation was executing a step gets that claim back: if the invocation is
  still working it simply carries on; if it has stopped, the message takes the run over
  once the claim has lapsed (at once when it ran in the same process), so the step is
  never executed twice at the same time. An invocation that stops because of the pause
  lets go of that claim (`let_go_after_pause`), so resuming a run whose invocation has
  stopped, in whatever process, queues it at once instead of waiting for the claim to
  lapse; one resumed before its invocation noticed the pause is queued again by it.
- `pause_workflow(id)` holds the workflow's new runs: `Lifecycle.start` creates them
  `PAUSED` (`by_workflow`) instead of queuing them. Engines read the hold through a
  per-process cache (`WorkflowHolds`, `HOLD_TTL_SECONDS`), so a run started by another
  process within that long of the pause may still start; `resume_workflow(id)` lifts the
  hold and resumes every run it held.
- `fire_timers(run_id)` (the dev server's `stepline timers fire`) moves the wake time of
  the run's sleeping, waiting or retrying steps to now and wakes it: a sleep ends, a wait
  times out, a retry is attempted now.

Each operation is a compare-and-set on the run item (retried on a conflict) followed by
an idempotent message, so repeating it is harmless.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING

from engine.errors import RunConflict
from engine.lease import same_claim
from engine.model import (
    Lease,
    PauseInfo,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    WorkMessage,
)
from engine.operator_model import WorkflowControl
from engine.ports import Clock, Ports, RunStore

if TYPE_CHECKING:
    from engine.lifecycle import Lifecycle

log = logging.getLogger("stepline.control")

#: How long an engine process trusts what it last read of a workflow's hold.
HOLD_TTL_SECONDS = 1.0
_ATTEMPTS = 8
_TIMED_STATUSES = (StepStatus.SLEEPING, StepStatus.WAITING, StepStatus.RETRYING)


class WorkflowHolds:
    """Whether a workflow's new runs are held, read at most once per `ttl` per workflow."""

    def __init__(self, store: RunStore, clock: Clock, ttl: float = HOLD_TTL_SECONDS) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._known: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def held(self, workflow_id: str) -> bool:
        now = self._clock.monotonic()
        with self._lock:
            known = self._known.get(workflow_id)
        if known is not None and now - known[1] < self._ttl:
            return known[0]
        control = self._store.get_workflow_control(workflow_id)
        paused = control is not None and control.paused
        self.note(workflow_id, paused)
        return paused

    def note(self, workflow_id: str, paused: bool) -> None:
        with self._lock:
            self._known[workflow_id] = (paused, self._clock.monotonic())


class RunControl:
    """Pause, resume and fire timers; see the module docstring."""

    def __init__(self, ports: Ports, lifecycle: Lifecycle) -> None:
        self.ports = ports
        self.lifecycle = lifecycle

    # -- one run -------------------------------------------------------------------------

    def pause(self, run_id: str, reason: str = "paused by an operator") -> bool:
        """Pause a run. False if it had finished or was paused already; KeyError if unknown."""
        store = self.ports.store
        for _ in range(_ATTEMPTS):
            run = self._get(run_id)
            if run.status.terminal or run.status is RunStatus.PAUSED:
                return False
            now = self.ports.clock.now()
            info = PauseInfo(at=now, reason=reason, was=run.status, lease=run.lease)
            paused = run.model_copy(
                update={
                    "status": RunStatus.PAUSED,
                    "version": run.version + 1,
                    "updated_at": now,
                    "lease": None,
                    "pause": info,
                }
            )
            try:
                store.write_run(paused, expected_version=run.version)
            except RunConflict:
                continue
            log.info("paused run %s (was %s): %s", run_id, run.status, reason)
            return True
        raise RuntimeError(f"run {run_id} kept changing while being paused; try again")

    def resume(self, run_id: str) -> bool:
        """Resume a paused run. False if it was not paused; KeyError if unknown."""
        store = self.ports.store
        for _ in range(_ATTEMPTS):
            run = self._get(run_id)
            if run.status is not RunStatus.PAUSED:
                return False
            now = self.ports.clock.now()
            info = run.pause
            lease = info.lease if info is not None else None
            update: dict[str, object] = {
                "version": run.version + 1,
                "updated_at": now,
                "pause": None,
                "wake_at": None,
            }
            if lease is not None and lease.expires_at > now:
                # Give the claim back: a holder still executing its step carries on.
                update.update(status=RunStatus.RUNNING, lease=lease)
                message = WorkMessage(run_id=run_id, reason="lease")
            else:
                update.update(status=RunStatus.QUEUED, lease=None)
                message = WorkMessage(run_id=run_id, reason="continue")
            try:
                store.write_run(run.model_copy(update=update), expected_version=run.version)
            except RunConflict:
                continue
            self.ports.queue.enqueue(message)
            log.info("resumed run %s", run_id)
            return True
        raise RuntimeError(f"run {run_id} kept changing while being resumed; try again")

    def fire_timers(self, run_id: str) -> list[str]:
        """Make the run's pending sleeps, wait timeouts and retry backoffs due now, and
        wake it. Returns the ids of the steps whose wake time moved (empty: nothing)."""
        loaded = self.ports.store.load(run_id)
        if loaded is None:
            raise KeyError(run_id)
        run = loaded.run
        if run.status.terminal:
            return []
        now = self.ports.clock.now()

        def due_now(current: StepRecord | None) -> StepRecord | None:
            if current is None or current.status not in _TIMED_STATUSES:
                return None
            if current.wake_at is not None and current.wake_at <= now:
                return None
            return current.model_copy(update={"wake_at": now})

        fired = []
        for key, step in sorted(loaded.steps.items()):
            if step.status in _TIMED_STATUSES and not run.passed(step):
                written = self.lifecycle.resolve_step(
                    run_id, key, due_now, current=loaded.stored(key)
                )
                if written is not None:
                    fired.append(step.id)
        if fired:
            armed = run.armed_at
            if armed is not None and armed > now:
                self.ports.timers.disarm(run_id, armed)
            self.lifecycle.wake(run_id, "timer")
        return fired

    # -- a whole workflow ----------------------------------------------------------------

    def pause_workflow(self, workflow_id: str, reason: str = "paused by an operator") -> None:
        """Hold the workflow's new runs as PAUSED until `resume_workflow`."""
        now = self.ports.clock.now()
        control = WorkflowControl(workflow_id=workflow_id, paused=True, reason=reason, at=now)
        self.ports.store.put_workflow_control(control)
        self.lifecycle.holds.note(workflow_id, True)
        log.info("paused workflow %s: new runs are held", workflow_id)

    def resume_workflow(self, workflow_id: str) -> list[str]:
        """Lift the hold and resume the runs it held; returns their ids."""
        now = self.ports.clock.now()
        self.ports.store.put_workflow_control(
            WorkflowControl(workflow_id=workflow_id, paused=False, at=now)
        )
        self.lifecycle.holds.note(workflow_id, False)
        resumed: list[str] = []
        seen: set[str] = set()
        while batch := [run for run in self.held_runs(workflow_id) if run.run_id not in seen]:
            for run in batch:
                seen.add(run.run_id)
                if self.resume(run.run_id):
                    resumed.append(run.run_id)
        log.info("resumed workflow %s and %d held run(s)", workflow_id, len(resumed))
        return resumed

    def workflow_paused(self, workflow_id: str) -> WorkflowControl | None:
        control = self.ports.store.get_workflow_control(workflow_id)
        return control if control is not None and control.paused else None

    def held_runs(self, workflow_id: str, limit: int = 1000) -> list[RunRecord]:
        """The workflow's runs held by its pause (not those paused one by one)."""
        return [
            run
            for run in self.ports.store.list_runs(
                workflow_id=workflow_id, status=RunStatus.PAUSED, limit=limit
            )
            if run.pause is not None and run.pause.by_workflow
        ]

    def _get(self, run_id: str) -> RunRecord:
        run = self.ports.store.get_run(run_id)
        if run is None:
            raise KeyError(run_id)
        return run


def let_go_after_pause(ports: Ports, run_id: str, claim: Lease) -> None:
    """Called by an invocation that stopped because its run was paused (engine/runner.py).

    If the run is still paused, the claim kept for resume is dropped: resuming queues the
    run at once. If it was resumed already and handed this claim back (the invocation had
    not stopped yet), the run is queued again with a message, since this invocation will
    not carry on. Anything else (cancelled, claimed by another, paused again under
    another claim) is left alone.
    """
    store = ports.store
    for _ in range(_ATTEMPTS):
        run = store.get_run(run_id)
        if run is None:
            return
        message: WorkMessage | None = None
        if run.status is RunStatus.PAUSED and run.pause is not None:
            if not same_claim(run.pause.lease, claim):
                return
            update: dict[str, object] = {"pause": run.pause.model_copy(update={"lease": None})}
        elif run.status is RunStatus.RUNNING and same_claim(run.lease, claim):
            update = {"status": RunStatus.QUEUED, "lease": None}
            message = WorkMessage(run_id=run_id, reason="continue")
        else:
            return
        update.update(version=run.version + 1, updated_at=ports.clock.now())
        try:
            store.write_run(run.model_copy(update=update), expected_version=run.version)
        except RunConflict:
            continue
        if message is not None:
            ports.queue.enqueue(message)
        log.info("run %s: the invocation stopped by its pause let go of its claim", run_id)
        return


def held_at_start(run: RunRecord, now: datetime, reason: str | None) -> RunRecord:
    """A new run as it is created while its workflow is paused."""
    return run.model_copy(
        update={
            "status": RunStatus.PAUSED,
            "pause": PauseInfo(
                at=now,
                reason=reason or "its workflow is paused",
                was=RunStatus.QUEUED,
                by_workflow=True,
            ),
        }
    )
