"""Read-only views of runs and steps: what LocalRuntime, the CLI and tests show users.

A step's `depth` is how many recorded operations it is nested in (0 in the workflow body
and in a plain parallel's branches; a map's items and a child's steps at 1; the steps of
a map item at 2, and so on), and its `detail` says what it waits for or how it ended: a wait's event, an
invoke's child run (and tenant), a callback's id, deadline and heartbeat, a batch's
counts, a poll's count and next time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.ids import callback_id
from engine.model import (
    AttemptFailure,
    ErrorInfo,
    RunRecord,
    RunStatus,
    StepKind,
    StepRecord,
    StepStatus,
)
from engine.ports import LoadedRun
from sdk import Event


@dataclass(frozen=True)
class RunView:
    run_id: str
    workflow_id: str
    status: str
    output: Any
    error: ErrorInfo | None
    event_name: str
    event_id: str
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    wake_at: datetime | None
    parent_run_id: str | None
    event: Event | None = None
    replay_of: str | None = None
    replay_from: str | None = None
    # Why a QUEUED run has not started: the flow control and key (engine/flow/).
    waiting: str | None = None
    continued_from: str | None = None
    continued_as: str | None = None
    tenant_id: str | None = None

    @classmethod
    def of(cls, run: RunRecord, event: Event | None = None) -> RunView:
        waiting = None
        if run.status is RunStatus.QUEUED and run.flow is not None and run.flow.waiting:
            waiting = run.flow.waiting.describe()
        return cls(
            run_id=run.run_id,
            workflow_id=run.workflow_id,
            status=run.status.value,
            output=run.output,
            error=run.error,
            event_name=run.event_name,
            event_id=run.event_id,
            created_at=run.created_at,
            updated_at=run.updated_at,
            ended_at=run.ended_at,
            wake_at=run.wake_at,
            parent_run_id=run.parent.run_id if run.parent else None,
            event=event,
            replay_of=run.replay_of,
            replay_from=run.replay_from,
            waiting=waiting,
            continued_from=run.continued_from,
            continued_as=run.continued_as,
            tenant_id=run.tenant_id,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "tenant_id": self.tenant_id,
            "workflow_id": self.workflow_id,
            "status": self.status,
            "output": self.output,
            "error": self.error.model_dump(exclude_none=True) if self.error else None,
            "event": {"name": self.event_name, "id": self.event_id},
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "ended_at": _iso(self.ended_at),
            "wake_at": _iso(self.wake_at),
            "parent_run_id": self.parent_run_id,
            "replay_of": self.replay_of,
            "replay_from": self.replay_from,
            "waiting": self.waiting,
            "continued_from": self.continued_from,
            "continued_as": self.continued_as,
        }


@dataclass(frozen=True)
class StepView:
    """One step of a run's audit trail."""

    id: str
    kind: str
    status: str
    attempts: int
    output: Any
    error: ErrorInfo | None
    started_at: datetime | None
    ended_at: datetime | None
    position: str = ""
    wake_at: datetime | None = None
    failures: tuple[AttemptFailure, ...] = ()
    detail: str = ""
    # Failed attempts older than the ones in `failures`, which the record did not keep.
    failures_dropped: int = 0
    child_run_id: str | None = None
    depth: int = 0
    # The id a callback is completed with (for `stepline callbacks complete ID`).
    callback_id: str | None = None

    @classmethod
    def of(cls, record: StepRecord, run: RunRecord | None = None, *, depth: int = 0) -> StepView:
        status, ended_at = record.status.value, record.ended_at
        if run is not None and run.passed(record):
            assert record.wake_at is not None
            status, ended_at = StepStatus.COMPLETED.value, record.wake_at
        token = None
        if record.callback is not None and run is not None:
            token = callback_id(run.run_id, record.key, record.callback.secret)
        return cls(
            id=record.id,
            kind=record.kind.value,
            status=status,
            attempts=record.attempts,
            output=record.output,
            error=record.error,
            started_at=record.started_at,
            ended_at=ended_at,
            position=str(record.key),
            wake_at=record.wake_at,
            failures=record.failures,
            detail=_detail(record),
            failures_dropped=record.failures_dropped,
            child_run_id=record.invoke.child_run_id if record.invoke is not None else None,
            depth=depth,
            callback_id=token,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "attempts": self.attempts,
            "output": self.output,
            "error": self.error.model_dump(exclude_none=True) if self.error else None,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "position": self.position,
            "wake_at": _iso(self.wake_at),
            "detail": self.detail,
            "failed_attempts": [
                {
                    "attempt": failure.attempt,
                    "error": str(failure.error),
                    "started_at": _iso(failure.started_at),
                    "ended_at": _iso(failure.ended_at),
                }
                for failure in self.failures
            ],
            "failed_attempts_not_kept": self.failures_dropped,
            "depth": self.depth,
            "callback_id": self.callback_id,
        }


def _detail(record: StepRecord) -> str:
    """What a step waits for, or how a batch or a poll went (module docstring)."""
    if record.wait is not None:
        detail = f"event {record.wait.event}"
        if record.wait.match:
            detail += f" where {record.wait.match} matches"
        if record.wait.if_:
            detail += f" if {record.wait.if_}"
        return detail
    if record.invoke is not None:
        detail = f"child {record.invoke.workflow} run {record.invoke.child_run_id}"
        if record.invoke.tenant_id:
            detail += f" (tenant {record.invoke.tenant_id})"
        return detail
    spec = record.callback
    if spec is not None:
        parts = []
        if spec.timeout_at is not None:
            parts.append(f"timeout {spec.timeout_at:%Y-%m-%d %H:%M:%S}")
        if spec.heartbeat_timeout is not None:
            beat = spec.heartbeat_at or record.started_at
            parts.append(
                f"heartbeat every {spec.heartbeat_timeout:g}s"
                + (f", last {beat:%Y-%m-%d %H:%M:%S}" if spec.heartbeat_at and beat else "")
            )
        if spec.settled_by is not None and record.settled:
            parts.append("by an event" if spec.settled_by != "api" else "by a direct call")
        return "; ".join(parts)
    if record.kind in (StepKind.MAP, StepKind.PARALLEL) and isinstance(record.output, dict):
        return _batch_detail(record.output, record.status)
    if record.kind is StepKind.CONDITION and record.status is StepStatus.RETRYING:
        return f"poll {record.attempts} done; next at {record.wake_at:%Y-%m-%d %H:%M:%S}"
    return ""


def _batch_detail(summary: dict[str, Any], status: StepStatus) -> str:
    total = summary.get("items", 0)
    letters = str(summary.get("statuses", ""))
    if status is StepStatus.STARTED or not letters:
        return f"{total} items, under way"
    counts = [
        (letters.count("S"), "succeeded"),
        (letters.count("F"), "failed"),
        (letters.count("T"), "unfinished"),
        (letters.count("-"), "not started"),
    ]
    text = ", ".join(f"{count} {word}" for count, word in counts if count)
    return f"{total} items: {text} ({summary.get('reason', '')})"


def history_of(loaded: LoadedRun) -> list[StepView]:
    steps = loaded.steps
    return [
        StepView.of(
            steps[key],
            loaded.run,
            depth=sum(key[:size] in steps for size in range(1, len(key))),
        )
        for key in sorted(steps)
    ]


@dataclass(frozen=True)
class RunningStep:
    """The step a RUNNING run is executing, as far as its records tell.

    A step is recorded when it ends, so the one in progress has no record yet: it is the
    next one after the last recorded step, or the next attempt of a RETRYING step.
    `step_id` is known in the latter case, and for a step that has run long enough for
    the holder to renew its lease, which notes the step it is executing
    (`Lease.current_step`, see engine/lease.py).
    """

    number: int  # its number in the audit trail, counting from 1
    after: str | None  # id of the last recorded step before it (None: it is the first)
    since: datetime  # it started at or before this: the claim, or the previous step's end
    lease_expires_at: datetime | None
    step_id: str | None = None
    attempt: int | None = None

    def describe(self) -> str:
        if self.step_id is not None:
            what = f"step {self.step_id!r}"
            if self.attempt is not None:
                what += f" (attempt {self.attempt})"
        elif self.after is not None:
            what = f"step #{self.number}, the one after {self.after!r},"
        else:
            what = "the first step"
        text = f"{what} is running, since {self.since:%Y-%m-%d %H:%M:%S}"
        if self.lease_expires_at is not None:
            text += f" (claimed until {self.lease_expires_at:%Y-%m-%d %H:%M:%S})"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "step_id": self.step_id,
            "attempt": self.attempt,
            "after": self.after,
            "since": _iso(self.since),
            "lease_expires_at": _iso(self.lease_expires_at),
        }


def running_step(loaded: LoadedRun) -> RunningStep | None:
    """What a RUNNING run is executing now (None for a run in any other status)."""
    run = loaded.run
    if run.status is not RunStatus.RUNNING:
        return None
    records = [loaded.steps[key] for key in sorted(loaded.steps)]
    lease_end = run.lease.expires_at if run.lease else None
    last = records[-1] if records else None
    if last is not None and (
        last.status is StepStatus.RETRYING
        or (last.status is StepStatus.STARTED and last.kind is StepKind.RUN)
    ):
        before = records[-2].id if len(records) > 1 else None
        return RunningStep(
            number=len(records),
            after=before,
            since=run.updated_at,
            lease_expires_at=lease_end,
            step_id=last.id,
            attempt=last.attempts + 1,
        )
    since = run.updated_at
    if last is not None:
        since = max(since, last.ended_at or last.wake_at or last.started_at or since)
    current = run.lease.current_step if run.lease else None
    return RunningStep(
        number=len(records) + 1,
        after=last.id if last is not None else None,
        # A step that has run for a while is named by the holder's lease renewals.
        since=current.started_at if current is not None else since,
        lease_expires_at=lease_end,
        step_id=current.id if current is not None else None,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
