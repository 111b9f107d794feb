"""A batch: run calls concurrently as items of one recorded operation (map, parallel).

Layout. The batch takes one position K in its scope and writes a STARTED record there
before anything runs (it names the operation: a replay that asks for something else at
K is non-deterministic, naming both). Item i is a scope of its own at K+(i,): the steps
its code calls are recorded under it (K+(i, 0), K+(i, 1), ...), and its own outcome is
recorded at K+(i,) once it ends, so a replay returns it without calling the item's code
again. When the batch's outcome is known, K is rewritten with a summary: why it ended
and a one-letter status per item (S succeeded, F failed, T started but unfinished,
- never started), about one byte per item. A replay of a finished batch reads the
summary and the item records and runs nothing.

Scheduling. Items start in index order, at most `max_concurrency` at a time (and at most
EngineSettings.max_parallel_threads in a sync workflow; an item waiting on a sleep, an
event or a callback frees its place), each after the step gate and the time budget
check. After each item ends the tally decides (`Tally.decide`); once the outcome is
decided no further item starts. Items not started in a fresh invocation for lack of
time are started by the next one (the run continues at once).

Completion options (`min_successful`, `tolerated_failure_count`,
`tolerated_failure_percentage`) make the batch return a `BatchResult`. It ends when
the successes reach `min_successful` (MIN_SUCCESSFUL_REACHED), the failures exceed the
tolerance (FAILURE_TOLERANCE_EXCEEDED; with `min_successful` alone the tolerance is
`total - min_successful`, the failures it can absorb), or every item ended
(ALL_COMPLETED). Items still running then stop at their next step call (`BatchHalted`)
and items waiting are abandoned: what they wait for is withdrawn from the run
(`Session.discard_pending`); both show as STARTED.

Without completion options the batch returns the results as a list. The first failure
decides it: no further item starts, the items already started finish (suspending the
run if they must wait, as `parallel` always has), and then the first failure in item
order is raised as `StepError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.driver import Schedule, Settled, UserCall
from engine.errors import BatchHalted, StepOutputError, SuspendRun
from engine.ids import MAX_POSITION, StepKey
from engine.model import ErrorInfo, StepKind, StepRecord, StepStatus
from engine.session import Session, Slot, step_error
from engine.values import from_record, to_record
from sdk import (
    BatchItem,
    BatchItemStatus,
    BatchResult,
    CompletionReason,
    NonDeterminismError,
    Serdes,
    StepError,
    WorkflowDefinitionError,
)

_LETTER = {
    BatchItemStatus.SUCCEEDED: "S",
    BatchItemStatus.FAILED: "F",
    BatchItemStatus.STARTED: "T",
    BatchItemStatus.NOT_STARTED: "-",
}
_STATUS = {letter: status for status, letter in _LETTER.items()}


@dataclass(frozen=True)
class Completion:
    """The completion options of a batch (all None: a list, failing on the first failure)."""

    min_successful: int | None = None
    tolerated_count: int | None = None
    tolerated_percentage: float | None = None

    @property
    def active(self) -> bool:
        return (
            self.min_successful is not None
            or self.tolerated_count is not None
            or self.tolerated_percentage is not None
        )

    @classmethod
    def of(
        cls,
        what: str,
        total: int,
        min_successful: int | None,
        tolerated_failure_count: int | None,
        tolerated_failure_percentage: float | None,
    ) -> Completion:
        if min_successful is not None:
            if not _is_int(min_successful) or min_successful < 1:
                raise WorkflowDefinitionError(f"{what}: min_successful must be a whole number >= 1")
            if total and min_successful > total:
                raise WorkflowDefinitionError(
                    f"{what}: min_successful={min_successful}, but there are only {total} items"
                )
        if tolerated_failure_count is not None and (
            not _is_int(tolerated_failure_count) or tolerated_failure_count < 0
        ):
            raise WorkflowDefinitionError(
                f"{what}: tolerated_failure_count must be a whole number >= 0"
            )
        if tolerated_failure_percentage is not None and (
            isinstance(tolerated_failure_percentage, bool)
            or not isinstance(tolerated_failure_percentage, int | float)
            or not 0 <= tolerated_failure_percentage <= 100
        ):
            raise WorkflowDefinitionError(
                f"{what}: tolerated_failure_percentage must be a number from 0 to 100"
            )
        return cls(min_successful, tolerated_failure_count, tolerated_failure_percentage)


def concurrency_limit(what: str, max_concurrency: int | None, default: int) -> int:
    if max_concurrency is None:
        return default
    if not _is_int(max_concurrency) or max_concurrency < 1:
        raise WorkflowDefinitionError(
            f"{what}: max_concurrency={max_concurrency!r}; use a whole number of at least 1 "
            "(or None for the default)"
        )
    return max_concurrency


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Tally:
    """The items' outcomes so far, and the batch's decision (thread-safe)."""

    def __init__(self, completion: Completion, total: int) -> None:
        self.completion = completion
        self.total = total
        self.succeeded = 0
        self.failed = 0
        # An empty batch is complete before it starts.
        self.reason: CompletionReason | None = None if total else CompletionReason.ALL_COMPLETED
        # Set once decided with completion options: items still running stop (BatchHalted).
        self.halt = threading.Event()
        # Items stopped for good (a port failure, another invocation, non-determinism).
        self.aborted = False
        self._lock = threading.Lock()

    @property
    def decided(self) -> bool:
        return self.reason is not None or self.aborted

    def note(self, settled: Settled) -> None:
        error = settled.error
        with self._lock:
            if error is None:
                self.succeeded += 1
            elif isinstance(error, SuspendRun | BatchHalted):
                return
            elif isinstance(error, Exception) and not isinstance(error, NonDeterminismError):
                self.failed += 1
            else:
                self.aborted = True
                return
            if self.reason is None:
                self.reason = self.decide()
                if self.reason is not None and self.completion.active:
                    self.halt.set()

    def decide(self) -> CompletionReason | None:
        done = self.succeeded + self.failed
        rules = self.completion
        if not rules.active:
            if self.failed:
                return CompletionReason.FAILURE_TOLERANCE_EXCEEDED
            return CompletionReason.ALL_COMPLETED if done == self.total else None
        tolerated = rules.tolerated_count
        if tolerated is None and rules.tolerated_percentage is None and rules.min_successful:
            tolerated = self.total - rules.min_successful
        if (tolerated is not None and self.failed > tolerated) or (
            rules.tolerated_percentage is not None
            and self.total
            and self.failed * 100 / self.total > rules.tolerated_percentage
        ):
            return CompletionReason.FAILURE_TOLERANCE_EXCEEDED
        if rules.min_successful is not None and self.succeeded >= rules.min_successful:
            return (
                CompletionReason.ALL_COMPLETED
                if done == self.total
                else CompletionReason.MIN_SUCCESSFUL_REACHED
            )
        return CompletionReason.ALL_COMPLETED if done == self.total else None


@dataclass(frozen=True)
class Item:
    name: str
    call: Callable[[], Any]


def item_name(what: str, name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise WorkflowDefinitionError(
            f"{what}: item name {name!r}: use a non-empty string of at most 200 characters"
        )
    return name


async def run_batch(
    session: Session,
    *,
    kind: StepKind,
    item_kind: StepKind,
    step_id: str,
    items: Sequence[Item],
    completion: Completion,
    limit: int,
    serdes: Serdes | None,
) -> Any:
    """The batch at the next position: replayed from its summary, or run (module docstring)."""
    total = len(items)
    if total > MAX_POSITION + 1:
        raise WorkflowDefinitionError(
            f"{kind} {step_id!r}: {total:,} items; a batch takes at most {MAX_POSITION + 1:,} "
            "(split it, or map over chunks)"
        )
    slot = await session.open(kind, step_id, holds_steps=True)
    record = slot.record
    if record is None and not total:
        # Nothing to run and nothing to record.
        empty = BatchResult(items=(), completion_reason=CompletionReason.ALL_COMPLETED)
        return empty if completion.active else []
    if record is not None and record.status is not StepStatus.STARTED:
        if record.status is StepStatus.FAILED:
            raise step_error(record)
        return _from_summary(session, slot.key, record, items, completion, serdes)
    if record is not None and isinstance(record.output, dict):
        recorded = record.output.get("items")
        if recorded != total:
            session.non_deterministic(
                slot.key,
                f"{kind} {record.id!r} of {recorded} items",
                f"{kind} {step_id!r} of {total} items",
            )
    if record is None:
        await session.record(
            slot,
            StepRecord(
                id=slot.step_id,
                kind=kind,
                status=StepStatus.STARTED,
                started_at=session.clock.now(),
                output={"items": total},
            ),
        )
        if session.plugins is not None:
            session.plugins.operation_start(slot.step_id, kind.value)
    tally = Tally(completion, total)
    settled = await Schedule(
        [
            _item_call(session, slot.key, index, item_kind, item, tally, serdes)
            for index, item in enumerate(items)
        ],
        limit=limit,
        max_threads=session.settings.max_parallel_threads,
        may_start=lambda index: _may_start(session, tally, slot.key.branch(index)),
        on_settle=lambda _, outcome: tally.note(outcome),
        operations=True,
    )
    return await _conclude(session, slot, items, settled, tally, serdes)


def _may_start(session: Session, tally: Tally, key: StepKey) -> bool:
    if tally.decided:
        return False
    recorded = session.record_at(key)
    # An item recorded already replays for free; new work waits for a fresh invocation
    # once this one's time is nearly spent.
    return (recorded is not None and recorded.settled) or not session.out_of_time()


def _item_call(
    session: Session,
    group: StepKey,
    index: int,
    kind: StepKind,
    item: Item,
    tally: Tally,
    serdes: Serdes | None,
) -> Callable[[], Any]:
    return lambda: _item(session, group.branch(index), kind, item, tally, serdes)


async def _item(
    session: Session,
    key: StepKey,
    kind: StepKind,
    item: Item,
    tally: Tally,
    serdes: Serdes | None,
) -> Any:
    """One item, in its own scope: replayed from its record, or run and recorded."""
    session.enter_scope(key, stop=tally.halt)
    slot = session.slot_at(key, kind, item.name)
    record = slot.record
    if record is not None and record.settled:
        if record.status is StepStatus.COMPLETED:
            return from_record(record.output, serdes)
        raise step_error(record)
    if tally.halt.is_set():
        raise BatchHalted()
    fresh = record is None and not session.has_steps_under(key)
    await session.gate()
    session.ensure_budget(slot)
    plugins = session.plugins
    if plugins is not None and fresh:
        plugins.operation_start(item.name, kind.value)
    started = session.clock.now()
    try:
        value = await UserCall(item.call)
        stored = to_record(
            f"{kind} {item.name!r}", value, serdes, max_bytes=session.settings.max_output_bytes
        )
    except Exception as error:
        if isinstance(error, NonDeterminismError):
            raise
        failed = await session.record(
            slot,
            StepRecord(
                id=item.name,
                kind=kind,
                status=StepStatus.FAILED,
                error=failure_info(error),
                started_at=started,
                ended_at=session.clock.now(),
            ),
        )
        if plugins is not None:
            plugins.operation_settled(failed, failed=True)
        raise step_error(failed) from None
    done = await session.record(
        slot,
        StepRecord(
            id=item.name,
            kind=kind,
            status=StepStatus.COMPLETED,
            output=stored,
            started_at=started,
            ended_at=session.clock.now(),
        ),
    )
    if plugins is not None:
        plugins.operation_settled(done, failed=False)
    return from_record(stored, serdes)


class ScopeFailure(Exception):
    """A failure a scope records exactly as given (type and message), naming no inner step.

    `wait_for_callback` raises it with the callback's own failure, so the StepError the
    workflow catches carries the completer's `error_type` and `error_message` as they were.
    """

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(f"{info.type}: {info.message}")
        self.info = info


def failure_info(error: Exception) -> ErrorInfo:
    """How a scope's failure is recorded: a StepError keeps the type of what failed inside."""
    if isinstance(error, ScopeFailure):
        return error.info
    if isinstance(error, StepError):
        return ErrorInfo(type=error.error_type, message=str(error))
    if isinstance(error, StepOutputError):
        return ErrorInfo.from_exception(error, with_traceback=False)
    return ErrorInfo.from_exception(error)


async def _conclude(
    session: Session,
    slot: Slot,
    items: Sequence[Item],
    settled: list[Settled | None],
    tally: Tally,
    serdes: Serdes | None,
) -> Any:
    """Every started item has settled: surface what must, suspend, or record the outcome."""
    for outcome in settled:
        error = outcome.error if outcome is not None else None
        if error is None or isinstance(error, SuspendRun | BatchHalted):
            continue
        if not isinstance(error, Exception) or isinstance(error, NonDeterminismError):
            raise error
    waiting = any(o is not None and isinstance(o.error, SuspendRun) for o in settled)
    completion = tally.completion
    if completion.active and tally.reason is not None:
        # Decided: what the unfinished items wait for no longer concerns the run.
        session.discard_pending(slot.key)
        statuses = [
            _status_of(session, slot.key.branch(index), outcome)
            for index, outcome in enumerate(settled)
        ]
        summary = await _record_summary(session, slot, tally.reason, statuses, None)
        return _from_summary(session, slot.key, summary, items, completion, serdes)
    if waiting:
        session.mark_suspended()
        raise SuspendRun()
    if tally.reason is None:
        # Items left unstarted for lack of time: the next invocation starts them.
        session.suspend(slot, "continue", session.clock.now())
    statuses = [
        _status_of(session, slot.key.branch(index), outcome)
        for index, outcome in enumerate(settled)
    ]
    first_failure = next(
        (o.error for o in settled if o is not None and isinstance(o.error, Exception)), None
    )
    if first_failure is not None:
        failed = await _record_summary(
            session, slot, tally.reason, statuses, failure_info(first_failure)
        )
        raise step_error(failed)
    await _record_summary(session, slot, tally.reason, statuses, None)
    return [outcome.value for outcome in settled if outcome is not None]


def _status_of(session: Session, key: StepKey, outcome: Settled | None) -> BatchItemStatus:
    if outcome is None:
        # Not started here; an earlier invocation may have finished it.
        record = session.record_at(key)
        if record is None or not record.settled:
            return BatchItemStatus.NOT_STARTED
        ok = record.status is StepStatus.COMPLETED
        return BatchItemStatus.SUCCEEDED if ok else BatchItemStatus.FAILED
    if outcome.error is None:
        return BatchItemStatus.SUCCEEDED
    if isinstance(outcome.error, SuspendRun | BatchHalted):
        return BatchItemStatus.STARTED
    return BatchItemStatus.FAILED


async def _record_summary(
    session: Session,
    slot: Slot,
    reason: CompletionReason,
    statuses: list[BatchItemStatus],
    error: ErrorInfo | None,
) -> StepRecord:
    previous = slot.record
    record = StepRecord(
        id=slot.step_id,
        kind=slot.kind,
        status=StepStatus.FAILED if error is not None else StepStatus.COMPLETED,
        output={
            "items": len(statuses),
            "reason": reason.value,
            "statuses": "".join(_LETTER[status] for status in statuses),
        },
        error=error,
        started_at=previous.started_at if previous else None,
        ended_at=session.clock.now(),
    )
    written = await session.record(slot, record)
    if session.plugins is not None:
        session.plugins.operation_settled(written, failed=error is not None)
    return written


def _from_summary(
    session: Session,
    key: StepKey,
    summary: StepRecord,
    items: Sequence[Item],
    completion: Completion,
    serdes: Serdes | None,
) -> Any:
    """What a finished batch returns, from its summary and its items' records."""
    output = summary.output if isinstance(summary.output, dict) else {}
    letters = str(output.get("statuses", ""))
    reason = CompletionReason(output.get("reason", CompletionReason.ALL_COMPLETED.value))
    results: list[BatchItem] = []
    for index, item in enumerate(items):
        status = _STATUS.get(
            letters[index] if index < len(letters) else "-", BatchItemStatus.NOT_STARTED
        )
        record = session.record_at(key.branch(index))
        result = error_type = error_message = None
        if status is BatchItemStatus.SUCCEEDED and record is not None:
            result = from_record(record.output, serdes)
        elif status is BatchItemStatus.FAILED and record is not None and record.error is not None:
            error_type, error_message = record.error.type, record.error.message
        results.append(
            BatchItem(
                index=index,
                name=item.name,
                status=status,
                result=result,
                error_type=error_type,
                error_message=error_message,
            )
        )
    if completion.active:
        return BatchResult(items=tuple(results), completion_reason=reason)
    return [entry.result for entry in results]
