"""Completing, failing and heartbeating a callback from outside its run.

Whoever holds a callback's id (engine.ids.callback_id) can answer it, three ways, all
ending here: `LocalRuntime.complete_callback` / `fail_callback` / `heartbeat_callback`,
the CLI (`stepline callbacks complete|fail|heartbeat ID`), and, for a deployed stack, an
event on the bus (`handle_event`, run by the events function):

| event name (`DetailType`) | detail |
|---|---|
| `stepline/callback.completed` | `{"callbackId": ID, "result": <any JSON>}` |
| `stepline/callback.failed` | `{"callbackId": ID, "errorType": "...", "errorMessage": "..."}` |
| `stepline/callback.heartbeat` | `{"callbackId": ID}` |

Each is one strongly consistent read of the callback's step (the id says where it is;
no index is involved, so a completion right after creation finds it), a check of the
secret (constant time), and for a completion or failure one conditional write of the
step plus a poke that wakes the run (an update of the run item and a work message).

Refusals are `CallbackError`s, and change nothing: an id that is malformed, names no
callback or carries the wrong secret is "unknown" (the answer does not say which); a
callback past its deadline is "expired"; one already completed or failed is "completed"
(the first result stands; the run is poked again, in case the first wake-up was lost);
one whose run was cancelled is "cancelled"; a result that cannot be stored is
"invalid". An event redelivered after it completed a callback is recognised by its id
and is not an error. On the event path a refusal is logged (without the secret) and the
event is not retried: retrying cannot change the answer.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from engine.codec import to_stored_json
from engine.errors import StepOutputError
from engine.ids import StepKey, parse_callback_id
from engine.lifecycle import Lifecycle
from engine.model import ErrorInfo, StepKind, StepRecord, StepStatus
from engine.operations.callback import deadline
from engine.ports import Ports, Stored
from engine.settings import EngineSettings
from sdk import CallbackError, Event

log = logging.getLogger("stepline.callbacks")

COMPLETED_EVENT = "stepline/callback.completed"
FAILED_EVENT = "stepline/callback.failed"
HEARTBEAT_EVENT = "stepline/callback.heartbeat"
EVENTS = (COMPLETED_EVENT, FAILED_EVENT, HEARTBEAT_EVENT)
#: Who settled a callback answered by a direct call (an event's id otherwise).
DIRECT = "api"


@dataclass(frozen=True)
class Receipt:
    """What an accepted call did."""

    run_id: str
    step_id: str
    status: str

    def to_json(self) -> dict[str, str]:
        return {"run_id": self.run_id, "step_id": self.step_id, "status": self.status}


class Callbacks:
    def __init__(self, ports: Ports, lifecycle: Lifecycle, settings: EngineSettings) -> None:
        self.ports = ports
        self.lifecycle = lifecycle
        self.settings = settings

    def complete(self, callback_id: str, result: Any = None, *, via: str = DIRECT) -> Receipt:
        """Complete the callback with `result` (any JSON value); its run carries on."""
        try:
            stored = to_stored_json(
                "the callback's result", result, max_bytes=self.settings.max_output_bytes
            )
        except StepOutputError as error:
            raise CallbackError("invalid", str(error)) from None
        return self._settle(callback_id, via, {"status": StepStatus.COMPLETED, "output": stored})

    def fail(
        self,
        callback_id: str,
        *,
        error_type: str = "CallbackFailed",
        error_message: str = "",
        via: str = DIRECT,
    ) -> Receipt:
        """Fail the callback: `cb.result()` raises StepError(error_type, error_message)."""
        if not isinstance(error_type, str) or not error_type.strip():
            raise CallbackError("invalid", "error_type must be a non-empty string")
        if not isinstance(error_message, str):
            raise CallbackError("invalid", "error_message must be a string")
        error = ErrorInfo(type=error_type, message=error_message)
        return self._settle(callback_id, via, {"status": StepStatus.FAILED, "error": error})

    def heartbeat(self, callback_id: str, *, via: str = DIRECT) -> Receipt:
        """Tell the callback its completer is alive: its heartbeat deadline starts again."""
        run_id, key, found = self._find(callback_id)
        now = self.ports.clock.now()

        def beat(current: StepRecord | None) -> StepRecord | None:
            record = self._waiting(callback_id, current)
            spec = record.callback
            assert spec is not None
            if spec.heartbeat_timeout is None:
                return None  # nothing to extend
            spec = spec.model_copy(update={"heartbeat_at": now})
            return record.model_copy(
                update={"callback": spec, "wake_at": deadline(spec, record.started_at or now)}
            )

        self.lifecycle.resolve_step(run_id, key, beat, current=found)
        return Receipt(run_id=run_id, step_id=found.record.id, status="WAITING")

    def _settle(self, callback_id: str, via: str, outcome: dict[str, Any]) -> Receipt:
        run_id, key, found = self._find(callback_id)
        now = self.ports.clock.now()

        def settle(current: StepRecord | None) -> StepRecord | None:
            if (
                current is not None
                and via != DIRECT
                and current.settled
                and current.callback is not None
                and current.callback.settled_by == via
            ):
                return None  # this very event settled it: a redelivery
            record = self._waiting(callback_id, current)
            assert record.callback is not None
            return record.model_copy(
                update={
                    **outcome,
                    "ended_at": now,
                    "callback": record.callback.model_copy(update={"settled_by": via}),
                }
            )

        try:
            written = self.lifecycle.resolve_step(run_id, key, settle, current=found)
        except CallbackError as refused:
            if refused.reason == "completed":
                # Its wake-up may have been lost after the first completion: poke again.
                self.lifecycle.wake(run_id, "event")
            raise
        # (None: this event had settled it already; the wake-up is repeated all the same.)
        self.lifecycle.wake(run_id, "event")
        status = written.status.value if written is not None else "COMPLETED"
        return Receipt(run_id=run_id, step_id=found.record.id, status=status)

    def _find(self, callback_id: str) -> tuple[str, StepKey, Stored]:
        parsed = parse_callback_id(callback_id)
        found = None
        if parsed is not None:
            run_id, key, secret = parsed
            found = self.ports.store.get_step(run_id, key)
            spec = found.record.callback if found is not None else None
            if (
                found is None
                or found.record.kind is not StepKind.CALLBACK
                or spec is None
                or not hmac.compare_digest(spec.secret.encode(), secret.encode())
            ):
                found = None
        if parsed is None or found is None:
            raise CallbackError(
                "unknown",
                f"no callback has the id {_shown(callback_id)}: check that it was copied "
                "whole (ids are never reused, and a forged one names no callback)",
            )
        return parsed[0], parsed[1], found

    def _waiting(self, callback_id: str, current: StepRecord | None) -> StepRecord:
        """The record if it can still be answered, else the CallbackError saying why."""
        if current is None or current.callback is None:
            raise CallbackError("unknown", f"no callback has the id {_shown(callback_id)}")
        what = f"callback {current.id!r}"
        now = self.ports.clock.now()
        status = current.status
        if status is StepStatus.WAITING and (current.wake_at is None or current.wake_at > now):
            return current
        if status in (StepStatus.COMPLETED, StepStatus.FAILED):
            when = current.ended_at.isoformat() if current.ended_at else "earlier"
            raise CallbackError(
                "completed",
                f"{what} was already {status.lower()} at {when}; the first result stands "
                "and this one was not recorded",
            )
        if status is StepStatus.CANCELLED:
            raise CallbackError("cancelled", f"{what} belongs to a run that was cancelled")
        expired = current.wake_at.isoformat() if current.wake_at else "earlier"
        raise CallbackError(
            "expired",
            f"{what} expired at {expired} (its timeout, or a missed heartbeat); it can no "
            "longer be completed",
        )

    # -- the event path (the events function) ----------------------------------------------

    def handle_event(self, event: Event) -> Receipt | None:
        """Answer the callback a `stepline/callback.*` event names; refusals are logged."""
        data = event.data if isinstance(event.data, dict) else {}
        callback_id = data.get("callbackId", data.get("callback_id"))
        if not isinstance(callback_id, str):
            log.error(
                "event %s (%s) has no callbackId string in its detail; nothing to answer",
                event.id,
                event.name,
            )
            return None
        try:
            if event.name == COMPLETED_EVENT:
                receipt = self.complete(callback_id, data.get("result"), via=event.id)
            elif event.name == FAILED_EVENT:
                receipt = self.fail(
                    callback_id,
                    error_type=str(
                        data.get("errorType", data.get("error_type")) or "CallbackFailed"
                    ),
                    error_message=str(data.get("errorMessage", data.get("error_message")) or ""),
                    via=event.id,
                )
            else:
                receipt = self.heartbeat(callback_id, via=event.id)
        except CallbackError as refused:
            log.warning(
                "event %s (%s) was refused (%s): %s", event.id, event.name, refused.reason, refused
            )
            return None
        log.info(
            "event %s (%s): callback %s of run %s is %s",
            event.id,
            event.name,
            receipt.step_id,
            receipt.run_id,
            receipt.status,
        )
        return receipt


def _shown(callback_id: object) -> str:
    """An id as logged and told: never its secret (the part after the last dot)."""
    text = str(callback_id)
    head = text.rsplit(".", 1)[0] if text.count(".") >= 2 else text[:8]
    return repr(head[:120] + ".…")
