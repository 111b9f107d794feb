"""Evaluating a workflow's key expressions on an event, and where each key's state lives.

A key value never enters a DynamoDB key: it is hashed (with the workflow, the control
and the expression, or the app for an app-scoped concurrency limit) into a fixed-size
`space`, so any value fits, and two controls can never share state by accident. The
first 60 characters of the value are kept with the run for `runs show` (`FlowKey.shown`),
never logged.

A key that cannot be evaluated raises `KeyFailure`, naming the control and the
expression and the kind of error: never the value or the event's data.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.flow.model import FlowKey, RunFlow
from engine.flow.ports import ItemKey
from engine.ids import canonical
from engine.matching import condition_holds, expression_budget
from engine.model import EPOCH
from sdk import Event, Workflow
from sdk._expression import ExpressionError
from sdk._flow import MAX_PRIORITY_SECONDS, Concurrency
from sdk._key import KeyExpression

log = logging.getLogger("stepline.flow")

#: Shown for a control without a key (one limit for all the workflow's runs).
WHOLE = ""


class KeyFailure(Exception):
    """A key expression failed on an event: which control, which expression, and why."""

    def __init__(self, workflow_id: str, control: str, source: str, category: str) -> None:
        super().__init__(f"the {control} key expression {source!r} failed: {category}")
        self.workflow_id = workflow_id
        self.control = control
        self.source = source
        self.category = category


def digest(*parts: object) -> str:
    """A fixed-size stand-in for key parts (a JSON list, so no two part lists collide)."""
    text = json.dumps([str(part) for part in parts], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _value(workflow: Workflow, control: str, key: KeyExpression, event: Event) -> Any:
    with expression_budget(f"event {event.id} ({event.name})") as budget:
        try:
            return key.value(event=event, budget=budget)
        except ExpressionError as error:
            raise KeyFailure(workflow.id, control, key.source, error.category) from None


def _shown(key: KeyExpression | None, value: Any) -> str:
    if key is None:
        return WHOLE
    text = canonical(value)
    return f"{key.source} = {text if len(text) <= 60 else text[:59] + '…'}"


def flow_key(
    workflow: Workflow, control: str, key: KeyExpression | None, event: Event, *extra: object
) -> FlowKey:
    """The key of `control` (of this workflow) for `event`."""
    value = None if key is None else _value(workflow, control, key, event)
    source = key.source if key is not None else None
    return FlowKey(
        ref=digest(control, source, *extra),
        space=f"{workflow.id}:{control}:{digest(workflow.id, control, source, canonical(value))}",
        shown=_shown(key, value),
    )


def concurrency_key(workflow: Workflow, limit: Concurrency, event: Event) -> FlowKey:
    if limit.scope == "workflow":
        return flow_key(workflow, "concurrency", limit.key, event, "workflow")
    assert limit.key is not None  # the SDK requires a key for scope="app"
    value = _value(workflow, "concurrency", limit.key, event)
    return FlowKey(
        ref=digest("concurrency", limit.key.source, "app"),
        space=f"app:{workflow.app_name}:{digest('app', workflow.app_name, canonical(value))}",
        shown=_shown(limit.key, value) + " (app-wide)",
    )


def priority_of(workflow: Workflow, event: Event) -> int:
    """Seconds of priority (-600..600). An expression that fails counts as 0, logged."""
    priority = workflow.flow.priority
    if priority is None:
        return 0
    try:
        seconds = priority.run.number(event=event)
    except ExpressionError as error:
        log.warning(
            "workflow %r: the priority expression %r could not be evaluated on event %s "
            "(%s): %s; using priority 0",
            workflow.id,
            priority.run.source,
            event.id,
            event.name,
            error.category,
        )
        return 0
    return int(max(-MAX_PRIORITY_SECONDS, min(MAX_PRIORITY_SECONDS, round(seconds))))


@dataclass(frozen=True)
class TriggerKeys:
    """What the controls applied when an event arrives are keyed by, for one workflow."""

    idempotency: FlowKey | None
    rate_limit: FlowKey | None
    batch: FlowKey | None
    debounce: FlowKey | None
    singleton: FlowKey | None


def trigger_keys(workflow: Workflow, event: Event) -> TriggerKeys:
    """Evaluate the keys of the controls applied at the trigger; KeyFailure if one fails.

    A batch whose `if_` does not hold (or cannot be evaluated) on the event is None: the
    event starts a run of its own, as Inngest's conditional batching does.
    """
    flow = workflow.flow
    batch = None
    if flow.batch is not None and _batched(workflow, event):
        batch = flow_key(workflow, "batch", flow.batch.key, event)
    return TriggerKeys(
        idempotency=(
            flow_key(workflow, "idempotency", flow.idempotency, event)
            if flow.idempotency is not None
            else None
        ),
        rate_limit=(
            flow_key(workflow, "rate_limit", flow.rate_limit.key, event)
            if flow.rate_limit is not None
            else None
        ),
        batch=batch,
        debounce=(
            None
            if flow.debounce is None
            else flow_key(workflow, "debounce", flow.debounce.key, event)
            if batch is None
            else batch_debounce_key(workflow, flow.debounce.key, event)
        ),
        singleton=(
            flow_key(workflow, "singleton", flow.singleton.key, event)
            if flow.singleton is not None
            else None
        ),
    )


def batch_debounce_key(workflow: Workflow, key: KeyExpression | None, event: Event) -> FlowKey:
    """The debounce key of a batched event (engine/flow/admission.py): it times the
    key's quiet period, which puts off the start of the batches opened by an event of
    that key. Its state is kept apart from the debounce of the events that are not
    batched (`Batch(if_=...)`), whose item holds a pending run instead."""
    plain = flow_key(workflow, "debounce", key, event, "batch")
    return plain.model_copy(update={"space": f"{plain.space}:batch"})


def _batched(workflow: Workflow, event: Event) -> bool:
    batch = workflow.flow.batch
    assert batch is not None
    if batch.if_ is None:
        return True
    return condition_holds(batch.if_, event, what=f"workflow {workflow.id!r}, Batch if_")


def run_keys(workflow: Workflow, event: Event) -> tuple[tuple[FlowKey, ...], FlowKey | None]:
    """The keys of the controls applied when a run executes: concurrency, throttle."""
    flow = workflow.flow
    limits = tuple(concurrency_key(workflow, limit, event) for limit in flow.concurrency)
    throttle = (
        flow_key(workflow, "throttle", flow.throttle.key, event)
        if flow.throttle is not None
        else None
    )
    return limits, throttle


# -- item keys ------------------------------------------------------------------------------


def state_item(key: FlowKey) -> ItemKey:
    """The one item of a rate limit, throttle, debounce, batch, singleton or idempotency key."""
    return ItemKey(f"FLOW#{key.space}", "STATE")


def slot_item(key: FlowKey, index: int) -> ItemKey:
    """A concurrency slot: one item (and partition) per slot, so no key is shared by all
    of a limit's runs."""
    return ItemKey(f"FLOW#{key.space}#{index}", "SLOT")


def queue_pk(key: FlowKey) -> str:
    """The partition of the runs waiting for one concurrency key's slots, FIFO by sort key."""
    return f"FLOWQ#{key.space}"


def queue_item(key: FlowKey, created_at: datetime, priority: int, run_id: str) -> ItemKey:
    """A waiting run's place: older first, `priority` seconds earlier (so stable per run)."""
    place = (created_at - EPOCH) // timedelta(microseconds=1) - priority * 1_000_000
    return ItemKey(queue_pk(key), f"{max(place, 0):020d}#{run_id}")


#: The queue partition's item holding its safety timer (sorts after every waiting run).
QUEUE_TIMER_SK = "~timer"


def marker_item(workflow_id: str, event_id: str) -> ItemKey:
    """What a controlled workflow did with one event (a redelivery finds it)."""
    return ItemKey(f"FLOWEV#{workflow_id}#{digest('event', event_id)}", "EVENT")


def run_flow(
    workflow: Workflow,
    event: Event,
    created_at: datetime,
    existing: RunFlow | None = None,
) -> RunFlow | None:
    """The flow state a run of `workflow` for `event` starts with, or `existing` with the
    keys of controls it lacks (the workflow changed, or the run was not started by an
    event: an invoked child, a replay) filled in. KeyFailure if a key fails. None for a
    workflow without flow controls and a run without state.
    """
    flow = workflow.flow
    if not flow.any:
        return existing
    current = existing or RunFlow()
    stored = {key.ref: key for key in current.concurrency}
    limits = tuple(
        stored.get(_concurrency_ref(limit)) or concurrency_key(workflow, limit, event)
        for limit in flow.concurrency
    )
    throttle = current.throttle
    if flow.throttle is not None and (
        throttle is None or throttle.ref != digest("throttle", _source(flow.throttle.key))
    ):
        throttle = flow_key(workflow, "throttle", flow.throttle.key, event)
    update: dict[str, Any] = {"concurrency": limits, "throttle": throttle}
    if existing is None:
        priority = priority_of(workflow, event)
        update["priority"] = priority
        if priority < 0:
            update["not_before"] = created_at + timedelta(seconds=-priority)
        if flow.timeouts is not None and flow.timeouts.start is not None:
            update["start_by"] = (event.ts or created_at) + flow.timeouts.start
    return current.model_copy(update=update)


def _source(key: KeyExpression | None) -> str | None:
    return key.source if key is not None else None


def _concurrency_ref(limit: Concurrency) -> str:
    return digest("concurrency", _source(limit.key), limit.scope)
