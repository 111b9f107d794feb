"""Deterministic identifiers: step keys (positions), run ids, event ids, index keys.

Everything here is a pure function of its inputs, so a replay, a redelivered message or
a second worker computes exactly the same ids. That is what makes starting a run,
sending an event and invoking a child idempotent.

Ids of different kinds never collide, whatever an event's id is: each digest hashes a
JSON-encoded list whose first element names its kind (JSON escapes every control
character, so no two lists encode alike). The one exception is `run_id_for`, kept as it
was so that an event redelivered (or re-sent with its own id) across an upgrade starts no
second run: its input joins two parts with a raw \\x1f, which no JSON text contains, so it
cannot equal the input of any other kind either.

The ids of the events a run sends are keyed with the run's secret (`RunRecord.secret`,
random, never shown): a re-send after a crash gets the same ids, but no other sender can
predict them and publish one first.

Keys stay within DynamoDB's limits by construction: an index key longer than DynamoDB
allows a partition key to be holds a digest of its parts instead, and event ids enter
keys only as digests (`event_key`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

POSITION_WIDTH = 5
MAX_POSITION = 10**POSITION_WIDTH - 1
_POSITION_TEXT = f"{{:0{POSITION_WIDTH}d}}"

# DynamoDB caps a partition key at 2,048 bytes (the waiter index's `g1pk` included).
# Index keys that fit stay readable, exactly as they always were.
MAX_PARTITION_KEY_BYTES = 2048
# What marks a key whose variable part was hashed: no JSON value starts with it.
HASHED = "~"


class StepKey(tuple[int, ...]):
    """Where a step sits in its run: the path of positions that leads to it.

    `StepKey((3,))` is the fourth step of the workflow body; `StepKey((3, 1, 0))` the
    first step of the second branch of the parallel group at position 3. Keys order as
    the code reached them (a group before its branches' steps, the branches in argument
    order), and depend only on the order in which the code calls steps, so they are the
    same on every replay, whatever order parallel branches finish in. A key is a tuple
    of its positions (so hashing and comparing cost what a tuple's do: keys are looked
    up several times per step).

    Text form (`str()`, `parse`): each position as five digits, joined by dots
    ("00003", "00003.00001.00000"), so the texts sort as the keys do. That text is what
    is stored (step items' sort keys, `ParentRef.step_key`, `RunRecord.suspended_at`)
    and what ids derived from a step hash (`child_run_id`, `sent_event_id`). The empty
    key is the workflow body's scope, never a step.
    """

    __slots__ = ()

    def __new__(cls, path: Iterable[int] = ()) -> StepKey:
        return super().__new__(cls, path)

    @classmethod
    def parse(cls, text: str) -> StepKey:
        """The key of a text form; ValueError if `text` is not one."""
        if text == "":
            return cls()
        parts = text.split(".")
        if not all(len(part) == POSITION_WIDTH and part.isdigit() for part in parts):
            raise ValueError(f"not a step key: {text!r}")
        return cls(int(part) for part in parts)

    @classmethod
    def of(cls, key: StepKey | str) -> StepKey:
        return key if isinstance(key, StepKey) else cls.parse(key)

    @property
    def path(self) -> tuple[int, ...]:
        return tuple(self)

    def child(self, position: int) -> StepKey:
        """The key of `position` inside this scope (a branch's prefix, or the body)."""
        return StepKey((*self, position))

    def branch(self, index: int) -> StepKey:
        """The scope of the index-th branch of the parallel group at this key."""
        return StepKey((*self, index))

    @property
    def group(self) -> StepKey | None:
        """The parallel group whose branch holds this step (None in the workflow body)."""
        return StepKey(self[:-2]) if len(self) > 2 else None

    def __str__(self) -> str:
        return ".".join(map(_POSITION_TEXT.format, self))

    def __repr__(self) -> str:
        return f"StepKey({str(self)!r})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # In records: validated from its text form (or a StepKey), stored as the text.
        return core_schema.no_info_plain_validator_function(
            cls._validate, serialization=core_schema.to_string_ser_schema()
        )

    @classmethod
    def _validate(cls, value: Any) -> StepKey:
        if isinstance(value, StepKey):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        raise ValueError(f"not a step key: {value!r}")


def display_step_id(user_id: str, occurrence: int) -> str:
    """The id shown for the n-th call with the same user id in one scope: "x", "x#2", ..."""
    return user_id if occurrence == 1 else f"{user_id}#{occurrence}"


def _encode(kind: str, parts: tuple[object, ...]) -> bytes:
    return json.dumps([kind, *parts], separators=(",", ":")).encode()


def _digest(kind: str, *parts: object, length: int = 24) -> str:
    return hashlib.sha256(_encode(kind, parts)).hexdigest()[:length]


def _legacy_digest(*parts: str, length: int = 24) -> str:
    # Only for ids that must stay as they were (see the module docstring).
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:length]


def run_id_for(workflow_id: str, event_id: str) -> str:
    """The run an event starts for a workflow: the same event never starts a second one."""
    return f"{workflow_id}-{_legacy_digest(workflow_id, event_id)}"


def child_run_id(workflow_id: str, parent_run_id: str, step_key: StepKey) -> str:
    return f"{workflow_id}-{_digest('child-run', parent_run_id, str(step_key))}"


def failure_run_id(workflow_id: str, failed_run_id: str) -> str:
    return f"{workflow_id}-{_digest('on-failure-run', failed_run_id)}"


def continued_run_id(workflow_id: str, run_id: str) -> str:
    """The run that continues `run_id` (`ctx.continue_as_new`): one per run."""
    return f"{workflow_id}-{_digest('continued-run', run_id)}"


def replay_run_id(original_run_id: str, workflow_id: str, nonce: str) -> str:
    """A new run re-running `original_run_id`; the nonce makes each replay distinct."""
    return f"{workflow_id}-{_digest('replay-run', original_run_id, nonce)}"


def sent_event_id(secret: str | None, run_id: str, step_key: StepKey, index: int) -> str:
    """The id of the index-th event a `send_event` step of a run publishes.

    Keyed with the run's secret: stable for the run (a re-send after a crash is the same
    event), unpredictable to anyone else. A run created before runs had secrets keeps the
    ids it has always derived, so its re-sends stay idempotent.
    """
    key = str(step_key)
    if secret is None:
        return f"evt-{_legacy_digest('send', run_id, key, str(index), length=32)}"
    mac = hmac.new(secret.encode(), _encode("sent-event", (run_id, key, index)), "sha256")
    return f"evt-{mac.hexdigest()[:32]}"


def canonical(value: Any) -> str:
    """A stable text form of a matched value, used in index keys (1 and "1" differ).

    Stored in index keys: changing it would orphan every wait and cancel rule indexed
    before the change.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def waiter_key(event_name: str, match_path: str | None, value: object) -> str:
    """Index key of a wait: waits and events meet only on equal keys."""
    if match_path is None:
        return _bounded("WAIT#", f"{event_name}#*", "wait-key", event_name)
    text = canonical(value)
    return _bounded(
        "WAIT#", f"{event_name}#{match_path}#{text}", "wait-key", event_name, match_path, text
    )


def subscription_key(workflow_id: str, rule_index: int, value: object | None) -> str:
    """Index key of a cancel_on rule of a run."""
    suffix = "*" if value is None else canonical(value)
    return _bounded(
        "CANCEL#",
        f"{workflow_id}#{rule_index}#{suffix}",
        "cancel-key",
        workflow_id,
        rule_index,
        suffix,
    )


def is_shared_key(key: str) -> bool:
    """Is `key` shared by every run waiting on an event name without `match`?

    `WAIT#<event name>#*` and `CANCEL#<workflow>#<rule>#*`: the only index keys whose
    holders grow with the app's traffic rather than one user's, so the store spreads
    them over several partitions (infra/dynamo_table.py). A matched value never makes a
    key end in `#*`: its canonical JSON text is quoted, a number, or a structure.
    """
    return key.endswith("#*")


def _bounded(prefix: str, readable: str, kind: str, *parts: object) -> str:
    """`prefix + readable` if it fits a partition key, else `prefix` + "~" + a digest."""
    key = prefix + readable
    if len(key.encode("utf-8", "surrogatepass")) <= MAX_PARTITION_KEY_BYTES:
        return key
    return f"{prefix}{HASHED}{_digest(kind, *parts, length=64)}"


def event_key(event_id: str) -> str:
    """A fixed-size stand-in for an event id in keys (the event log's sort key)."""
    return _digest("event-id", event_id, length=32)


def timer_name(run_id: str, wake_epoch_seconds: int) -> str:
    """An EventBridge Scheduler name (<= 64 chars of [0-9A-Za-z-_.]) for a run's wake-up."""
    return f"stepline-{_digest('timer', run_id, length=40)}-{wake_epoch_seconds}"


def cron_event_id(workflow_id: str, expression: str, tz: str, tick: datetime) -> str:
    """The event of one workflow's run for one tick of one of its Crons: a tick (however
    often it is delivered, at either occurrence of a repeated wall time) starts one run."""
    instant = tick.astimezone(UTC)
    digest = _digest("cron-tick", workflow_id, expression, tz, instant.isoformat(), length=20)
    return f"cron-{instant:%Y%m%dT%H%M%SZ}-{digest}"


_CALLBACK_PREFIX = "cb1"


def callback_id(run_id: str, step_key: StepKey, secret: str) -> str:
    """The id a callback is completed by: where it is, and its secret (module docstring).

    `<prefix>.<base64url of [run id, step key]>.<secret>`: the first parts let whoever
    holds the id find the callback with one strongly consistent read (no index, so a
    completion right after creation finds it); the secret, 128 random bits drawn through
    the Clock when the callback was created and kept in its record, makes the id
    unguessable and good for this callback only.
    """
    where = json.dumps([run_id, str(step_key)], separators=(",", ":")).encode()
    encoded = base64.urlsafe_b64encode(where).decode().rstrip("=")
    return f"{_CALLBACK_PREFIX}.{encoded}.{secret}"


def parse_callback_id(text: object) -> tuple[str, StepKey, str] | None:
    """(run id, step key, secret) of a callback id, or None if `text` is not one."""
    if not isinstance(text, str) or len(text) > 4096:
        return None
    parts = text.strip().split(".")
    if len(parts) != 3 or parts[0] != _CALLBACK_PREFIX or not parts[2]:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        run_id, key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return str(run_id), StepKey.parse(key), parts[2]
    except (ValueError, TypeError):
        return None
