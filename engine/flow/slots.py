"""Concurrency slots: at most `limit` runs of a key executing at once, the others queued.

A limit L of a key is L slot items (engine/flow/keys.py `slot_item`), each in its own
partition, holding `{run, claim, exp}`: the run, the lease of the invocation that holds
it (`claim`, so that only that invocation releases or renews it), and when it expires
(the lease's expiry; `LeaseKeeper` renews both together). A slot is free when it is
absent or expired, so a killed holder's slot frees itself one lease later.

Taking a slot is one conditional put on the slot the run's id hashes to, free or already
the run's; only when that fails are all L slots read (BatchGetItem) for a free one. A
run is the only one holding its claim (the run's lease), so a duplicate delivery never
takes a second slot. A run that finds none registers in its key's queue (a partition
ordered oldest first, priority seconds earlier: `queue_item`) and leaves; nothing polls.

Releasing hands the slot over: to the queue's head if there is one (the slot is granted
to it for a lease's length, it is sent a "flow" message, and its queue item is removed,
in that order, so a crash leaves it queued rather than lost), else the slot is deleted.
New runs therefore never jump the queue while it holds runs. `tend` hands out free or
expired slots to the queue's heads and, while runs stay queued behind held slots, keeps
one safety timer per key (its `~timer` item) for the earliest expiry: the only thing
that finds the slot of a holder that died. A grant to a run that has finished is passed
on by the message it receives (`pass_on`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.errors import FlowConflict, PermanentError, TransientError
from engine.flow import gcra
from engine.flow.keys import QUEUE_TIMER_SK, queue_item, queue_pk, slot_item
from engine.flow.model import FlowKey
from engine.flow.ports import (
    Absent,
    AtVersion,
    DeleteItem,
    FlowItem,
    HeldBy,
    ItemKey,
    PutItem,
    SlotFree,
)
from engine.model import RunRecord, WorkMessage
from engine.ports import Ports

log = logging.getLogger("stepline.flow")

#: The `claim` of a slot handed to a queued run that has not taken it yet.
GRANT = "grant"
#: How many queued runs one look at a queue considers.
_HEADS = 10


def claim_of(run: RunRecord) -> str:
    """The identity of the invocation holding a RUNNING run: its lease's."""
    lease = run.lease
    assert lease is not None
    return f"{lease.message_id}|{lease.receive_count}|{lease.holder}"


@dataclass
class Held:
    key: FlowKey
    limit: int
    index: int
    data: dict[str, Any]


@dataclass
class Limit:
    """One concurrency limit as it applies to a run: its key and how many slots."""

    key: FlowKey
    limit: int


@dataclass
class Slots:
    ports: Ports
    grant_for: timedelta
    renewal_failures: int = field(default=0)

    # -- taking --------------------------------------------------------------------------

    def take(self, run: RunRecord, limit: Limit, now: datetime) -> Held | None:
        """A slot of `limit` for `run` (claimed by this invocation), or None if none is free."""
        data = {"run": run.run_id, "claim": claim_of(run), "exp": self._exp(run)}
        first = _home(run.run_id, limit.limit)
        if self._put(limit.key, first, data, SlotFree(run.run_id, now)):
            return Held(limit.key, limit.limit, first, data)
        slots = self._slots(limit)
        mine = [i for i, item in slots.items() if item.data.get("run") == run.run_id]
        free = [i for i in range(limit.limit) if _free(slots.get(i), now)]
        for index in [*mine, *free]:
            if index != first and self._put(limit.key, index, data, SlotFree(run.run_id, now)):
                for extra in mine:
                    if extra != index:
                        # Handed to this run twice (two releases raced): pass the other on.
                        self.hand_over(limit, extra, HeldBy(claim=GRANT, run_id=run.run_id), now)
                return Held(limit.key, limit.limit, index, data)
        return None

    def _exp(self, run: RunRecord) -> int:
        assert run.lease is not None
        return gcra.micros(run.lease.expires_at)

    def _put(self, key: FlowKey, index: int, data: dict[str, Any], expect: Any) -> bool:
        try:
            self.ports.flow.commit([PutItem(slot_item(key, index), data, expect)])
        except FlowConflict:
            return False
        return True

    def _slots(self, limit: Limit) -> dict[int, FlowItem]:
        keys = [slot_item(limit.key, index) for index in range(limit.limit)]
        found = self.ports.flow.get_items(keys)
        return {index: found[key] for index, key in enumerate(keys) if key in found}

    # -- queueing ------------------------------------------------------------------------

    def enqueue(self, run: RunRecord, limit: Limit) -> None:
        """Put `run` in its key's queue (idempotent: its place derives from the run)."""
        priority = run.flow.priority if run.flow is not None else 0
        place = queue_item(limit.key, run.created_at, priority, run.run_id)
        self.ports.flow.commit([PutItem(place, {"run": run.run_id}, None)])

    def dequeue(self, run: RunRecord, limit: Limit) -> None:
        priority = run.flow.priority if run.flow is not None else 0
        place = queue_item(limit.key, run.created_at, priority, run.run_id)
        self.ports.flow.commit([DeleteItem(place)])

    def _heads(self, limit: Limit, *, skip: str | None = None) -> list[FlowItem]:
        items = self.ports.flow.first_items(queue_pk(limit.key), limit=_HEADS + 1)
        return [
            item for item in items if item.key.sk != QUEUE_TIMER_SK and item.data.get("run") != skip
        ][:_HEADS]

    # -- releasing -----------------------------------------------------------------------

    def release(self, held: Held, now: datetime) -> None:
        """Give the slot this invocation holds to the queue's head, or free it."""
        limit = Limit(held.key, held.limit)
        self.hand_over(limit, held.index, HeldBy(claim=held.data["claim"]), now)

    def hand_over(self, limit: Limit, index: int, expect: HeldBy, now: datetime) -> None:
        skip = expect.run_id or None
        heads = self._heads(limit, skip=skip)
        if not heads:
            try:
                self.ports.flow.commit([_delete(limit.key, index, expect)])
            except FlowConflict:
                pass  # no longer ours (it expired and was taken): nothing to give
            return
        head = heads[0]
        if self._grant(limit, index, head, expect, now):
            return
        log.debug("slot %d of %s was no longer ours to hand over", index, limit.key.space)

    def _grant(
        self,
        limit: Limit,
        index: int,
        head: FlowItem,
        expect: HeldBy | AtVersion | Absent,
        now: datetime,
    ) -> bool:
        run_id = str(head.data["run"])
        grant = {"run": run_id, "claim": GRANT, "exp": gcra.micros(now + self.grant_for)}
        try:
            self.ports.flow.commit([PutItem(slot_item(limit.key, index), grant, expect)])
        except FlowConflict:
            return False
        # Told before it leaves the queue: a crash in between leaves it queued, not lost.
        self.ports.queue.enqueue(WorkMessage(run_id=run_id, reason="flow"))
        self.ports.flow.commit([DeleteItem(head.key)])
        return True

    def tend(self, limit: Limit, now: datetime) -> list[str]:
        """Hand free or expired slots to the queue's heads; keep a safety timer while runs
        stay queued behind held slots. Returns the runs given a slot."""
        heads = self._heads(limit)
        if not heads:
            return []
        slots = self._slots(limit)
        free = [i for i in range(limit.limit) if _free(slots.get(i), now)]
        granted: list[str] = []
        for head in heads:
            while free:
                index = free.pop(0)
                current = slots.get(index)
                expect = AtVersion(current.version) if current is not None else Absent()
                if self._grant(limit, index, head, expect, now):
                    granted.append(str(head.data["run"]))
                    break
            else:
                break
        waiting = [head for head in heads if str(head.data["run"]) not in granted]
        if waiting and not free:
            expiries = [int(item.data.get("exp", 0)) for item in slots.values()]
            soonest = gcra.instant(min(expiries)) if expiries else now
            self._safety_timer(limit, max(soonest, now), str(waiting[0].data["run"]), now)
        return granted

    def _safety_timer(self, limit: Limit, at: datetime, run_id: str, now: datetime) -> None:
        """One timer per key, for the earliest expiry of a held slot (a holder may die)."""
        key = ItemKey(queue_pk(limit.key), QUEUE_TIMER_SK)
        current = self.ports.flow.get_items([key]).get(key)
        armed = gcra.instant(int(current.data["at"])) if current is not None else None
        if armed is not None and now < armed <= at + timedelta(seconds=1):
            return  # one is armed already, for no later than needed
        try:
            self.ports.flow.commit(
                [
                    PutItem(
                        key,
                        {"at": gcra.micros(at), "run": run_id},
                        AtVersion(current.version) if current is not None else Absent(),
                        version=(current.version + 1) if current is not None else 1,
                        expires_at=at + timedelta(days=1),
                    )
                ]
            )
        except FlowConflict:
            return  # another run armed it just now
        # A timer wakes the queue's head; if it has been served by then, its message
        # tends the queue instead (see FlowGate.on_stray).
        self.ports.timers.arm(run_id, at + timedelta(seconds=1))

    def pass_on(self, run_id: str, limit: Limit, now: datetime) -> None:
        """Hand on the slots granted to a run that will not take them, then tend."""
        for index, item in self._slots(limit).items():
            if item.data.get("run") == run_id and item.data.get("claim") == GRANT:
                self.hand_over(limit, index, HeldBy(claim=GRANT, run_id=run_id), now)
        self.tend(limit, now)

    # -- renewing ------------------------------------------------------------------------

    def renew(self, held: Held, expires_at: datetime) -> None:
        """Extend a held slot with its holder's lease (called from the lease's renewals)."""
        data = {**held.data, "exp": gcra.micros(expires_at)}
        try:
            self.ports.flow.commit(
                [PutItem(slot_item(held.key, held.index), data, HeldBy(claim=held.data["claim"]))]
            )
            held.data = data
        except FlowConflict:
            self.renewal_failures += 1
            log.warning(
                "concurrency slot %d of %s expired before it could be renewed; the run "
                "carries on without it",
                held.index,
                held.key.space,
            )
        except (TransientError, PermanentError) as error:
            log.warning("could not renew concurrency slot %s (%s)", held.key.space, error)


def _delete(key: FlowKey, index: int, expect: HeldBy) -> DeleteItem:
    return DeleteItem(slot_item(key, index), expect)


def _free(item: FlowItem | None, now: datetime) -> bool:
    return item is None or int(item.data.get("exp", 0)) <= gcra.micros(now)


def _home(run_id: str, limit: int) -> int:
    """The slot a run tries first: spread over the slots, the same on every attempt."""
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16) % limit
