"""Would this run survive the new code? Replay its history against it, running nothing.

`check_run(app, loaded)` replays a run's recorded history through the app's current
workflow function the way an engine invocation would (engine/interpreter.py), with one
difference: the first step that has no settled record, the place where the run would go
on with new work, ends the replay there. No step function runs, nothing is written, no
port is called. The verdict (`Verdict.kind`):

- `ok`: the history replays up to where the run stands (or, for a finished run, to
  the same outcome: the same output, or a failure again);
- `diverges`: the code asks at some position for another step than the one recorded
  there (`NonDeterminismError`), or it returns while recorded steps remain unreached,
  or a finished run now reaches work its history lacks or ends otherwise;
- `fails`: the code raises on the recorded history (say, it reads a field the old
  events lack), so the run would fail;
- `unknown-workflow`: the app no longer defines the run's workflow (removed or renamed).

`stepline check` runs this over the runs in flight (or exported histories) before a
deploy; the engine itself never uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from engine.clock import ManualClock
from engine.errors import ErrorType, StepOutputError
from engine.ids import StepKey
from engine.interpreter import Interpreter
from engine.lifecycle import Lifecycle
from engine.model import RunStatus, StepKind
from engine.outcomes import Completed, Failed
from engine.ports import LoadedRun, Ports
from engine.session import Session, Slot
from engine.settings import EngineSettings
from sdk import App, NonDeterminismError

VerdictKind = Literal["ok", "diverges", "fails", "unknown-workflow"]


@dataclass(frozen=True)
class Verdict:
    run_id: str
    workflow_id: str
    #: The run's status as recorded.
    status: str
    kind: VerdictKind
    #: What happens on replay, in a sentence.
    message: str
    #: Where the replay stopped or diverged (a step position), if anywhere.
    position: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow_id": self.workflow_id,
            "status": self.status,
            "verdict": self.kind,
            "message": self.message,
            "position": self.position,
        }


class _NewWork(BaseException):
    """The replay reached a step with no settled record: where the run would go on."""

    def __init__(self, slot: Slot) -> None:
        super().__init__(slot.step_id)
        self.slot = slot


class _NoPorts:
    """Stands in for every port: the replay must never reach one."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a replay check called a port ({name})")


class _ReplayOnly(Session):
    """A session that replays settled records and stops at anything else."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reached: set[StepKey] = set()
        #: Where the code first asked for something else than the history holds:
        #: (position, what is recorded there, what the code asked for).
        self.diverged_at: tuple[StepKey, str, str] | None = None

    async def open(self, kind: StepKind, user_id: str, *, holds_steps: bool = False) -> Slot:
        peeked = self.peek()
        try:
            slot = await super().open(kind, user_id, holds_steps=holds_steps)
        except NonDeterminismError:
            recorded = peeked.record
            what = f"step {recorded.id!r} ({recorded.kind})" if recorded else "a parallel group"
            self.diverged_at = (peeked.key, what, f"step {user_id!r} ({kind})")
            raise
        self.reached.add(slot.key)
        record = slot.record
        if record is None or not (record.settled or record.elapsed(self.clock.now())):
            raise _NewWork(slot)
        return slot

    def open_group(self) -> StepKey:
        peeked = self.peek()
        try:
            key = super().open_group()
        except NonDeterminismError:
            recorded = peeked.record
            assert recorded is not None
            recorded_step = f"step {recorded.id!r} ({recorded.kind})"
            self.diverged_at = (peeked.key, recorded_step, "a parallel group")
            raise
        self.reached.add(key)
        return key


def check_run(app: App, loaded: LoadedRun, *, now: datetime) -> Verdict:
    """Replay one run's history against `app` (module docstring)."""
    run = loaded.run

    def verdict(kind: VerdictKind, message: str, position: StepKey | None = None) -> Verdict:
        where = str(position) if position is not None else None
        return Verdict(run.run_id, run.workflow_id, run.status.value, kind, message, where)

    workflow = app.get(run.workflow_id)
    if workflow is None:
        return verdict(
            "unknown-workflow",
            f"app {app.name!r} does not define workflow {run.workflow_id!r} any more (removed "
            "or renamed?): the run would fail. Keep the workflow until its runs are done, "
            "or cancel them.",
        )
    # Recorded sleeps end by when the run was last written, whatever this machine's clock.
    instant = max(now, run.updated_at, run.ended_at or run.updated_at)
    nothing: Any = _NoPorts()
    ports = Ports(
        store=nothing,
        index=nothing,
        events=nothing,
        queue=nothing,
        timers=nothing,
        bus=nothing,
        clock=ManualClock(instant),
        flow=nothing,
    )
    settings = EngineSettings()
    interpreter = Interpreter(
        app=app,
        workflow=workflow,
        loaded=loaded,
        ports=ports,
        lifecycle=Lifecycle(ports),
        settings=settings,
        remaining_time=lambda: float("inf"),
    )
    session = _ReplayOnly(
        app=app,
        workflow=workflow,
        loaded=loaded,
        ports=ports,
        lifecycle=Lifecycle(ports),
        settings=settings,
        remaining_time=lambda: float("inf"),
    )
    interpreter.session = session
    finished = run.status in (RunStatus.COMPLETED, RunStatus.FAILED)
    try:
        outcome = interpreter.execute()
    except _NewWork as stop:
        slot = stop.slot
        if finished:
            return verdict(
                "diverges",
                f"the run {run.status.value.lower()}, but the code now goes on to step "
                f"{slot.step_id!r} ({slot.kind}), which its history lacks",
                slot.key,
            )
        return verdict(
            "ok",
            f"replays up to step {slot.step_id!r} ({slot.kind}), where it carries on",
            slot.key,
        )
    if isinstance(outcome, Failed):
        error = outcome.error
        if error.type == ErrorType.NON_DETERMINISM:
            if session.diverged_at is None:
                return verdict("diverges", error.message)
            key, recorded, asked = session.diverged_at
            return verdict(
                "diverges",
                f"diverges at position {key}: the history recorded {recorded} there, the "
                f"code now asks for {asked}",
                key,
            )
        if run.status is RunStatus.FAILED:
            return verdict("ok", f"fails again on replay, as it did ({error.type})")
        return verdict("fails", f"the code raises on the recorded history: {error}")
    unreached = sorted((key for key in loaded.steps if key not in session.reached), key=str)
    if isinstance(outcome, Completed) and unreached:
        first = loaded.steps[unreached[0]]
        return verdict(
            "diverges",
            f"the code returns before reaching step {first.id!r} ({first.kind}), which the "
            f"history recorded at position {unreached[0]} ({len(unreached)} unreached)",
            unreached[0],
        )
    if isinstance(outcome, Completed) and run.status is RunStatus.COMPLETED:
        try:
            output = session.encode("the workflow", outcome.output)
        except StepOutputError as error:
            return verdict("fails", str(error))
        if output != run.output:
            return verdict("diverges", "the code completes with another output than recorded")
        return verdict("ok", "completes again with the recorded output")
    if isinstance(outcome, Completed) and run.status is RunStatus.FAILED:
        return verdict("diverges", "the run failed, but the code now completes")
    if isinstance(outcome, Completed):
        return verdict("ok", "replays to its end: the run would complete")
    return verdict("ok", "replays up to where it waits")
