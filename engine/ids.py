"""Deterministic identifiers: step positions, run ids, event ids, index keys.

Everything here is a pure function of its inputs, so a replay, a redelivered message or
a second worker computes exactly the same ids. That is what makes starting a run,
sending an event and invoking a child idempotent.
"""

from __future__ import annotations

import hashlib

from sdk._expression import canonical

POSITION_WIDTH = 5
MAX_POSITION = 10**POSITION_WIDTH - 1


def position_key(path: tuple[int, ...]) -> str:
    """ "00003" for position 3; "00003.00001.00000" inside a parallel branch."""
    return ".".join(f"{part:0{POSITION_WIDTH}d}" for part in path)


def display_step_id(user_id: str, occurrence: int) -> str:
    """The id shown for the n-th call with the same user id in one scope: "x", "x#2", ..."""
    return user_id if occurrence == 1 else f"{user_id}#{occurrence}"


def _digest(*parts: str, length: int = 24) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


def run_id_for(workflow_id: str, event_id: str) -> str:
    """The run an event starts for a workflow: the same event never starts a second one."""
    return f"{workflow_id}-{_digest(workflow_id, event_id)}"


def child_run_id(workflow_id: str, parent_run_id: str, step_key: str) -> str:
    return f"{workflow_id}-{_digest('invoke', parent_run_id, step_key)}"


def failure_run_id(workflow_id: str, failed_run_id: str) -> str:
    return f"{workflow_id}-{_digest('on-failure', failed_run_id)}"


def replay_run_id(original_run_id: str, workflow_id: str, nonce: str) -> str:
    """A new run re-running `original_run_id`; the nonce makes each replay distinct."""
    return f"{workflow_id}-{_digest('replay', original_run_id, nonce)}"


def sent_event_id(run_id: str, step_key: str, index: int) -> str:
    """The id of the index-th event a `send_event` step publishes."""
    return f"evt-{_digest('send', run_id, step_key, str(index), length=32)}"


def waiter_key(event_name: str, match_path: str | None, value: object) -> str:
    """Index key of a wait: waits and events meet only on equal keys."""
    if match_path is None:
        return f"WAIT#{event_name}#*"
    return f"WAIT#{event_name}#{match_path}#{canonical(value)}"


def subscription_key(workflow_id: str, rule_index: int, value: object | None) -> str:
    """Index key of a cancel_on rule of a run."""
    suffix = "*" if value is None else canonical(value)
    return f"CANCEL#{workflow_id}#{rule_index}#{suffix}"


def timer_name(run_id: str, wake_epoch_seconds: int) -> str:
    """An EventBridge Scheduler name (<= 64 chars of [0-9A-Za-z-_.]) for a run's wake-up."""
    return f"stepline-{_digest(run_id, length=40)}-{wake_epoch_seconds}"
