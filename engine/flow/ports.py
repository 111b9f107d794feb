"""The `FlowStore` port: small versioned items, changed together or not at all.

Every control keeps its state in items of its own, one per (workflow or app, key value)
and never one shared by all runs of a workflow: a rate limit's or throttle's GCRA time,
a debounce, an open batch, a singleton lock, an idempotency claim, one item per
concurrency slot, one per queued run waiting for a slot, and a marker per event a
controlled workflow admitted (so a redelivered event is recognised). The engine decides
everything from what it reads; the store only offers:

- `get_items`: strongly consistent reads of items by key;
- `first_items`: the first items of one partition, in sort-key order (a slot queue);
- `commit`: a list of `Change`s applied atomically, each under its `Expect`ation. A run
  can be created, rewritten (compare-and-set on its version), given a new trigger event
  or a batched event in the same commit, so that a control's state never disagrees with
  the run it governs. A failed expectation raises `engine.errors.FlowConflict` naming the
  changes that failed (nothing was written).

One change is one conditional request; several are one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from engine.model import CancelSubscription, RunRecord
from sdk import Event


@dataclass(frozen=True, slots=True)
class ItemKey:
    pk: str
    sk: str


@dataclass(frozen=True)
class FlowItem:
    """A stored flow item: its JSON data, its version, and when it may be forgotten.

    An item past `expires_at` may still be returned (DynamoDB deletes late); the engine
    treats it as gone, and replaces it by version.
    """

    key: ItemKey
    data: dict[str, Any]
    version: int = 0
    expires_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True)
class Absent:
    """The item must not exist."""


@dataclass(frozen=True)
class AtVersion:
    """The item must be stored at this version (it was read so)."""

    version: int


@dataclass(frozen=True)
class SlotFree:
    """A concurrency slot: absent, expired (`exp` at or before `now`), or held by `run_id`."""

    run_id: str
    now: datetime


@dataclass(frozen=True)
class HeldBy:
    """The item's `claim` (and `run`, when given) are these."""

    claim: str | None = None
    run_id: str | None = None


Expect = Absent | AtVersion | SlotFree | HeldBy | None


@dataclass(frozen=True)
class PutItem:
    """Write an item. Data fields `run`, `claim` and `exp` (epoch µs) may be expected on."""

    key: ItemKey
    data: dict[str, Any]
    expect: Expect
    version: int = 0
    expires_at: datetime | None = None


@dataclass(frozen=True)
class DeleteItem:
    key: ItemKey
    expect: Expect = None


@dataclass(frozen=True)
class CreateRun:
    """Create a run (its item, trigger event and cancel rules); fails if it exists."""

    run: RunRecord
    event: Event
    subscriptions: tuple[CancelSubscription, ...] = ()


@dataclass(frozen=True)
class WriteRun:
    """Replace the run item if it is at `expected_version` (as `RunStore.write_run`)."""

    run: RunRecord
    expected_version: int


@dataclass(frozen=True)
class SetRunEvent:
    """Replace a run's trigger event (a debounced run starts with the last event)."""

    run_id: str
    event: Event


@dataclass(frozen=True)
class AddBatchEvent:
    """Add the `position`-th event (from 1) of a batched run; loaded as `LoadedRun.batch`."""

    run_id: str
    position: int
    event: Event


Change = PutItem | DeleteItem | CreateRun | WriteRun | SetRunEvent | AddBatchEvent


class FlowStore(Protocol):
    def get_items(self, keys: Sequence[ItemKey]) -> dict[ItemKey, FlowItem]:
        """The items that exist among `keys` (strongly consistent)."""
        ...

    def first_items(self, pk: str, *, limit: int) -> list[FlowItem]:
        """Up to `limit` items of partition `pk`, in sort-key order (strongly consistent)."""
        ...

    def commit(self, changes: Sequence[Change]) -> None:
        """Apply every change or none; FlowConflict if an expectation fails."""
        ...
