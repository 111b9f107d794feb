"""An in-memory `FlowStore` beside `engine.testing.InMemoryStore`, for unit tests.

It keeps the port's contract: items by key, partitions in sort-key order, and commits
that check every expectation before applying any change, under the run store's lock (so
runs created or rewritten by a commit change with the items, atomically).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.errors import FlowConflict
from engine.flow import gcra
from engine.flow.ports import (
    Absent,
    AddBatchEvent,
    AtVersion,
    Change,
    CreateRun,
    DeleteItem,
    Expect,
    FlowItem,
    HeldBy,
    ItemKey,
    PutItem,
    SetRunEvent,
    SlotFree,
    WriteRun,
)

if TYPE_CHECKING:
    from engine.testing import InMemoryStore


class InMemoryFlowStore:
    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.items: dict[ItemKey, FlowItem] = {}
        self.commits = 0

    def get_items(self, keys: Sequence[ItemKey]) -> dict[ItemKey, FlowItem]:
        with self.store._lock:
            return {key: self.items[key] for key in keys if key in self.items}

    def first_items(self, pk: str, *, limit: int) -> list[FlowItem]:
        with self.store._lock:
            found = sorted(
                (item for key, item in self.items.items() if key.pk == pk),
                key=lambda item: item.key.sk,
            )
            return found[:limit]

    def commit(self, changes: Sequence[Change]) -> None:
        store = self.store
        with store._lock:
            failed: list[int] = []
            runs: dict[int, Any] = {}
            for index, change in enumerate(changes):
                if isinstance(change, PutItem | DeleteItem):
                    if not _meets(self.items.get(change.key), change.expect):
                        failed.append(index)
                elif isinstance(change, CreateRun):
                    if change.run.run_id in store.runs:
                        failed.append(index)
                elif isinstance(change, WriteRun):
                    current = store.runs.get(change.run.run_id)
                    if current is None or current.version != change.expected_version:
                        failed.append(index)
                        runs[index] = current
            if failed:
                raise FlowConflict(tuple(failed), runs)
            self.commits += 1
            for change in changes:
                if isinstance(change, PutItem):
                    self.items[change.key] = FlowItem(
                        change.key, dict(change.data), change.version, change.expires_at
                    )
                elif isinstance(change, DeleteItem):
                    self.items.pop(change.key, None)
                elif isinstance(change, CreateRun):
                    store.create_run(change.run, change.event, change.subscriptions)
                elif isinstance(change, WriteRun):
                    store.runs[change.run.run_id] = change.run
                elif isinstance(change, SetRunEvent):
                    store.events[change.run_id] = change.event
                elif isinstance(change, AddBatchEvent):
                    store.batch_events.setdefault(change.run_id, {})[change.position] = change.event


def _meets(item: FlowItem | None, expect: Expect) -> bool:
    if expect is None:
        return True
    if isinstance(expect, Absent):
        return item is None
    if isinstance(expect, AtVersion):
        return item is not None and item.version == expect.version
    if isinstance(expect, SlotFree):
        return (
            item is None
            or int(item.data.get("exp", 0)) <= gcra.micros(expect.now)
            or item.data.get("run") == expect.run_id
        )
    assert isinstance(expect, HeldBy)
    if item is None:
        return False
    if expect.claim is not None and item.data.get("claim") != expect.claim:
        return False
    return expect.run_id is None or item.data.get("run") == expect.run_id
