"""Holding a run while one invocation advances it: the lease, its renewal, the step gate.

A RUNNING run carries a `Lease` naming the SQS delivery that claimed it. While that
invocation works, `LeaseKeeper`:

- renews the lease every third of its duration from a background thread, so a lease
  outlives a long step but not its holder (a killed holder stops renewing, and the lease
  expires a `lease_duration` later); each renewal also notes the step now executing, for
  `runs show`, and renews what lives as long as the lease (`renew_also`: the run's
  concurrency slots, engine/flow/slots.py). Renewals never change the run's version, so they cost the holder nothing
  at its final write.
- answers the step gate (`check`), which the session calls before any new step
  starts. The gate looks at the run item again when its last look is older than
  `control_interval`: a cancel, a pause (engine/control.py) or anything else that ends
  the holder's claim recorded by then stops the invocation before the step starts. So
  no step starts later than `control_interval` plus one read after a cancel or pause,
  and a run of fast inline steps pays one read per `control_interval`, not one per step.

Stopping is `RunHalted` (a `Superseded`): the session abandons the invocation
without writing anything more; whoever ended the claim owns the run now.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from engine.errors import PermanentError, RunConflict, RunHalted, TransientError
from engine.model import CurrentStep, Lease, RunRecord, RunStatus
from engine.ports import Clock, RunStore
from engine.settings import EngineSettings

log = logging.getLogger("stepline.engine")


class LeaseKeeper:
    """Renews one invocation's lease and gates its new steps; see the module docstring."""

    def __init__(
        self,
        store: RunStore,
        clock: Clock,
        run: RunRecord,
        settings: EngineSettings,
        *,
        renew_also: Callable[[datetime], None] | None = None,
    ) -> None:
        assert run.lease is not None
        self._store = store
        self._clock = clock
        self._run_id = run.run_id
        self._lease = run.lease
        self._settings = settings
        # What else lives as long as the lease (the run's concurrency slots, engine/flow/).
        self._renew_also = renew_also
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_look = clock.monotonic()
        self._running_steps: dict[str, datetime] = {}
        #: Why the invocation must stop (None while it holds the run).
        self.halted: str | None = None
        #: Whether the run was cancelled under the holder (the canceller cleans up, but
        #: what this invocation registered after that is the holder's to withdraw).
        self.cancelled = False
        #: Whether it stopped because the run was paused (then it lets go of its claim:
        #: engine/control.py, `let_go_after_pause`).
        self.paused = False

    # -- lifetime ------------------------------------------------------------------------

    def __enter__(self) -> LeaseKeeper:
        self._thread = threading.Thread(
            target=self._renew_until_closed, name=f"stepline-lease-{self._run_id}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _renew_until_closed(self) -> None:
        interval = self._settings.lease_duration.total_seconds() / 3
        while not self._stopped.wait(interval):
            self.renew()

    def renew(self) -> None:
        """Extend the lease by a full duration from now; note a loss of the claim."""
        with self._lock:
            lease = self._lease.model_copy(
                update={"expires_at": self._clock.now() + self._settings.lease_duration}
            )
            # The longest-running one is the one worth showing.
            running = min(
                (CurrentStep(id=step, started_at=at) for step, at in self._running_steps.items()),
                key=lambda step: step.started_at,
                default=None,
            )
        try:
            current = self._store.renew_lease(self._run_id, lease, current_step=running)
        except RunConflict:
            self._halt("the run no longer exists", cancelled=False)
            return
        except (TransientError, PermanentError) as error:
            # The lease still runs for two more renewal intervals; try again then (and a
            # holder whose lease lapsed meanwhile learns it at its next step gate).
            log.warning("run %s: could not renew its lease (%s)", self._run_id, error)
            return
        if current is None:
            with self._lock:
                self._lease = lease
            if self._renew_also is not None:
                self._renew_also(lease.expires_at)
            return
        self._note(current)

    # -- the step gate -------------------------------------------------------------------

    def look_due(self) -> bool:
        """Whether the next `check` reads the run item (its last look is too old)."""
        return (
            self.halted is None
            and self._clock.monotonic() - self._last_look
            >= self._settings.control_interval.total_seconds()
        )

    def check(self) -> None:
        """Before a new step starts: raise RunHalted if this invocation no longer holds
        the run (looking at the run item again when the last look is too old)."""
        if self.halted is None:
            now = self._clock.monotonic()
            if now - self._last_look >= self._settings.control_interval.total_seconds():
                self._last_look = now
                try:
                    current = self._store.get_run(self._run_id)
                except TransientError as error:
                    # Carry on: the next step looks again, and the final write is guarded.
                    log.warning("run %s: could not look at the run (%s)", self._run_id, error)
                    return
                if current is None:
                    self._halt("the run no longer exists", cancelled=False)
                else:
                    self._note(current)
        if self.halted is not None:
            raise RunHalted(self.halted)

    def step_started(self, step_id: str, started_at: datetime) -> None:
        """Note a step now executing (parallel branches may run several), for renewals."""
        with self._lock:
            self._running_steps[step_id] = started_at

    def step_ended(self, step_id: str) -> None:
        with self._lock:
            self._running_steps.pop(step_id, None)

    @property
    def claim(self) -> Lease:
        """This invocation's claim on the run (its lease as last renewed)."""
        with self._lock:
            return self._lease

    def holds(self, current: RunRecord) -> bool:
        """Whether `current` (the stored run) is still under this invocation's claim."""
        return current.status is RunStatus.RUNNING and same_claim(current.lease, self._lease)

    def _note(self, current: RunRecord) -> None:
        """Compare the stored run with our claim; halt if the claim is gone."""
        if current.status is RunStatus.CANCELLED:
            self._halt(f"the run was cancelled ({_reason(current)})", cancelled=True)
        elif current.status is RunStatus.PAUSED:
            self.paused = True
            self._halt("the run was paused", cancelled=False)
        elif not self.holds(current):
            self._halt(f"the run is {current.status} under another claim now", cancelled=False)

    def _halt(self, reason: str, *, cancelled: bool) -> None:
        if self.halted is None:
            log.info("run %s: stopping this invocation: %s", self._run_id, reason)
            self.halted = reason
            self.cancelled = cancelled


def same_claim(stored: Lease | None, ours: Lease) -> bool:
    """Whether `stored` is the claim `ours` (the same delivery, by the same holder)."""
    return (
        stored is not None
        and stored.message_id == ours.message_id
        and stored.receive_count == ours.receive_count
        and stored.holder == ours.holder
    )


def _reason(run: RunRecord) -> str:
    return run.error.message if run.error is not None else "no reason given"
