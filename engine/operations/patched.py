"""`ctx.patched` and `ctx.deprecate_patch`: evolve a workflow while runs are in flight.

    if ctx.patched("send-sms"):
        ctx.step.run("notify", send_sms, user)       # the new code
    else:
        ctx.step.run("notify", send_email, user)     # what runs recorded before did

`patched(change_id)` looks at the position the code has reached (`Session.peek`):

- the history holds this change's marker there: the run took the new code when it got
  here (an earlier invocation recorded it): True;
- the history holds something else there (a step, a parallel group, another change's
  marker): the run was recorded by code without this change, and replays the old
  path: False, and nothing is taken or written (the old step keeps its position);
- nothing is recorded there: the run reaches this point for the first time, with this
  code: the marker is recorded like a step (one conditional put, kind `patched`, at
  this position) and it answers True, now and on every replay.

Within one invocation the answer for a change id is decided once (a second call
with the same id returns it and takes no position), as with Temporal's `patched`.

Once no run recorded before the change is in flight (`stepline check` tells), remove
the old branch and replace `ctx.patched(id)` with `ctx.deprecate_patch(id)`: it takes
the marker where runs that took the new path recorded one and does nothing elsewhere,
so those runs replay too. When none of them is left either, remove that call as well.

Neither is a `ctx.step` method: they decide a branch and do no work of their own, so
they are called without `await` in `async def` workflows too.
"""

from __future__ import annotations

import threading

from engine.driver import drive_sync
from engine.model import StepKind, StepRecord, StepStatus
from engine.session import Session
from sdk import WorkflowDefinitionError


async def patched(session: Session, change_id: str) -> bool:
    _check(change_id, "ctx.patched")
    _, record, group = session.peek()
    if group or (record is not None and not _is_marker(record, change_id)):
        return False
    slot = await session.open(StepKind.PATCH, change_id)
    if slot.record is None:
        now = session.clock.now()
        await session.record(
            slot,
            StepRecord(
                key=slot.key,
                id=slot.step_id,
                kind=StepKind.PATCH,
                status=StepStatus.COMPLETED,
                output=True,
                started_at=now,
                ended_at=now,
            ),
        )
    return True


async def deprecate_patch(session: Session, change_id: str) -> None:
    _check(change_id, "ctx.deprecate_patch")
    record = session.peek().record
    if record is not None and _is_marker(record, change_id):
        await session.open(StepKind.PATCH, change_id)


def _is_marker(record: StepRecord, change_id: str) -> bool:
    return record.kind is StepKind.PATCH and record.id == change_id


def _check(change_id: str, what: str) -> None:
    if not isinstance(change_id, str) or not change_id.strip() or len(change_id) > 200:
        raise WorkflowDefinitionError(
            f"{what}({change_id!r}): the change id must be a non-empty string of at most "
            "200 characters"
        )


class Patches:
    """The engine's side of `ctx.patched` / `ctx.deprecate_patch` for one invocation."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._decided: dict[str, bool] = {}
        self._lock = threading.Lock()

    def patched(self, change_id: str) -> bool:
        with self._lock:
            known = self._decided.get(change_id)
        if known is not None:
            return known
        answer = drive_sync(patched(self._session, change_id))
        with self._lock:
            return self._decided.setdefault(change_id, answer)

    def deprecate_patch(self, change_id: str) -> None:
        with self._lock:
            if change_id in self._decided:
                return
        drive_sync(deprecate_patch(self._session, change_id))
        with self._lock:
            self._decided[change_id] = True
