"""`step.invoke`: start a child run and return its output; its failure raises StepError.

Replay: the position holds the invoke's record. COMPLETED returns the child's output,
FAILED (the child failed or was cancelled) and TIMED_OUT raise `StepError`; WAITING past
its timeout is settled TIMED_OUT here (unless the child settled it first: then that is
the answer); otherwise the run suspends again.

First run: the child run is created first (idempotent: its id derives from this run and
the step's key), and the WAITING record second, so a crash in between makes the replay
create the same child again instead of waiting on nothing. A fast child may settle the
step before it is recorded: the conflict returns the child's record, which is the answer.
The child wakes this run when it finishes (`Lifecycle.notify_parent`); nothing polls.

Options: `payload_serdes` sends any value as `{"payload": <its text>}` (the child
deserialises `ctx.event.data["payload"]` with the same serdes); `result_serdes`
deserialises the child's output (the text it returned, or its JSON) before it is
returned; `tenant_id` is recorded on the child run (and on this step) and shown by
`runs show`.
"""

from __future__ import annotations

from typing import Any

from engine.errors import ErrorType
from engine.ids import child_run_id
from engine.model import ErrorInfo, InvokeSpec, ParentRef, StepKind, StepRecord, StepStatus
from engine.session import Session, Slot, step_error
from engine.values import from_record, to_record
from sdk import INVOKED_EVENT, Event, Serdes, Workflow, WorkflowDefinitionError
from sdk._duration import Duration, parse_duration
from sdk._serdes import check_serdes


async def invoke(
    session: Session,
    step_id: str,
    *,
    workflow: str | Workflow,
    data: Any = None,
    timeout: Duration | None = None,
    payload_serdes: Serdes | None = None,
    result_serdes: Serdes | None = None,
    tenant_id: str | None = None,
) -> Any:
    what = f"step.invoke {step_id!r}"
    app = session.app
    workflow_id = workflow.id if isinstance(workflow, Workflow) else workflow
    child = app.get(workflow_id) if isinstance(workflow_id, str) else None
    if child is None:
        raise WorkflowDefinitionError(
            f"{what}: app {app.name!r} has no workflow {workflow_id!r} "
            f"(it has {sorted(app.workflows)})"
        )
    wait_for = parse_duration(timeout, what=f"{what} timeout") if timeout is not None else None
    if tenant_id is not None and (
        not isinstance(tenant_id, str) or not tenant_id.strip() or len(tenant_id) > 256
    ):
        raise WorkflowDefinitionError(f"{what}: tenant_id must be a non-empty string (<= 256)")
    results = check_serdes(result_serdes, what=what)
    payload: Any
    if payload_serdes is not None:
        text = to_record(
            f"{what} data",
            data,
            check_serdes(payload_serdes, what=what),
            max_bytes=session.settings.max_output_bytes,
        )
        payload = {"payload": text}
    else:
        payload = session.encode(f"{what} data", data if data is not None else {})
    if not isinstance(payload, dict):
        raise WorkflowDefinitionError(
            f"{what}: data must be a JSON object (a dict), or give payload_serdes"
        )
    slot = await session.open(StepKind.INVOKE, step_id)
    if slot.record is not None:
        return from_record(await _outcome(session, slot), results)
    now = session.clock.now()
    child_id = child_run_id(child.id, session.run_id, slot.key)
    parent = ParentRef(run_id=session.run_id, step_key=slot.key, step_id=slot.step_id)
    event = Event(name=INVOKED_EVENT, data=payload, id=child_id, ts=now)
    await session.call_port(
        lambda: session.lifecycle.start_run(
            child, event, run_id=child_id, parent=parent, tenant_id=tenant_id
        )
    )
    await session.record(
        slot,
        StepRecord(
            id=slot.step_id,
            kind=StepKind.INVOKE,
            status=StepStatus.WAITING,
            started_at=now,
            wake_at=now + wait_for if wait_for is not None else None,
            invoke=InvokeSpec(workflow=child.id, child_run_id=child_id, tenant_id=tenant_id),
        ),
        on_conflict="return",
    )
    if session.plugins is not None:
        session.plugins.operation_start(slot.step_id, StepKind.INVOKE.value)
    settled = await _outcome(session, slot, fresh=True)
    return from_record(settled, results)


async def _outcome(session: Session, slot: Slot, *, fresh: bool = False) -> Any:
    record = slot.record
    assert record is not None
    plugins = session.plugins
    if plugins is not None and record.settled and (fresh or session.resumed_at(slot.key)):
        plugins.operation_settled_once(record, failed=record.status is not StepStatus.COMPLETED)
    if record.status is StepStatus.COMPLETED:
        return record.output
    if record.settled:
        raise step_error(record)
    now = session.clock.now()
    if record.wake_at is not None and record.wake_at <= now:
        child = record.invoke.child_run_id if record.invoke else "?"
        waited = record.wake_at - (record.started_at or record.wake_at)
        await session.record(
            slot,
            record.model_copy(
                update={
                    "status": StepStatus.TIMED_OUT,
                    "ended_at": now,
                    "error": ErrorInfo(
                        type=ErrorType.INVOKE_TIMEOUT,
                        message=f"child run {child} did not finish within {waited}",
                    ),
                }
            ),
            on_conflict="return",
        )
        return await _outcome(session, slot, fresh=True)
    session.suspend(slot, "invoke", record.wake_at)
