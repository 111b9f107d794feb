"""Run control on `LocalRuntime`: pause and resume runs and workflows, fire timers now.

    rt.pause(run_id); rt.resume(run_id)              # a run (DESIGN.md, "Run control")
    rt.pause_workflow("billing"); rt.resume_workflow("billing")
    rt.fire_timers(run_id)                           # its sleep ends, its wait times out, now

Each processes the queues until idle afterwards, like `rt.cancel`. The semantics are
engine/control.py's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.control import RunControl
from infra.wiring import Services


class RunControlMixin:
    services: Services

    if TYPE_CHECKING:  # LocalRuntime's own

        def _require(self) -> None: ...

        def drain(self) -> int:
            raise NotImplementedError

    @property
    def control(self) -> RunControl:
        return RunControl(self.services.ports, self.services.lifecycle)

    def pause(self, run_id: str, reason: str = "paused by user") -> bool:
        """Pause a run; False if it had finished or was paused already."""
        self._require()
        paused = self.control.pause(run_id, reason)
        self.drain()
        return paused

    def resume(self, run_id: str) -> bool:
        """Resume a paused run; False if it was not paused. Processes until idle."""
        self._require()
        resumed = self.control.resume(run_id)
        self.drain()
        return resumed

    def pause_workflow(self, workflow_id: str, reason: str = "paused by user") -> None:
        """Hold the workflow's new runs as PAUSED until `resume_workflow`."""
        self._require()
        self.control.pause_workflow(workflow_id, reason)

    def resume_workflow(self, workflow_id: str) -> list[str]:
        """Lift the hold; resumes (and processes) the runs it held, whose ids it returns."""
        self._require()
        resumed = self.control.resume_workflow(workflow_id)
        self.drain()
        return resumed

    def fire_timers(self, run_id: str) -> list[str]:
        """End the run's sleeps and time out its waits now; returns the steps it fired."""
        self._require()
        fired = self.control.fire_timers(run_id)
        self.drain()
        return fired
