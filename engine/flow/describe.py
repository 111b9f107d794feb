"""A workflow's triggers and flow controls for people (`stepline workflows list`)."""

from __future__ import annotations

from typing import Any

from sdk import Workflow
from sdk._flow import _text


def controls(workflow: Workflow) -> list[str]:
    """One line per flow control, in the order they apply."""
    flow = workflow.flow
    lines = []
    if flow.idempotency is not None:
        lines.append(f"idempotency: one run per {flow.idempotency.source} per 24h")
    if flow.rate_limit is not None:
        limit = flow.rate_limit
        lines.append(
            f"rate_limit: {limit.limit} per {_text(limit.period)}{_per(limit.key)}, excess dropped"
        )
    if flow.batch is not None:
        batch = flow.batch
        lines.append(
            f"batch_events: up to {batch.max_size} events or {_text(batch.timeout)}"
            + _per(batch.key)
            + (f" if {batch.if_.source}" if batch.if_ is not None else "")
        )
    if flow.debounce is not None:
        debounce = flow.debounce
        cap = f", at most {_text(debounce.timeout)}" if debounce.timeout is not None else ""
        if flow.batch is None:
            what = f"{_text(debounce.period)} after the last event{_per(debounce.key)}"
        else:
            what = (
                f"a ready batch waits until no event came for {_text(debounce.period)}"
                f"{_per(debounce.key)} of its first event"
            )
        lines.append(f"debounce: {what}{cap}")
    if flow.singleton is not None:
        lines.append(f"singleton: {flow.singleton.mode}{_per(flow.singleton.key)}")
    if flow.throttle is not None:
        throttle = flow.throttle
        lines.append(
            f"throttle: {throttle.limit} starts per {_text(throttle.period)}"
            f"{_per(throttle.key)}, burst {throttle.burst}, excess queued"
        )
    for concurrency in flow.concurrency:
        scope = " (app-wide)" if concurrency.scope == "app" else ""
        lines.append(f"concurrency: {concurrency.limit} at once{_per(concurrency.key)}{scope}")
    if flow.priority is not None:
        lines.append(f"priority: {flow.priority.run.source} seconds")
    if flow.timeouts is not None:
        parts = []
        if flow.timeouts.start is not None:
            parts.append(f"start within {_text(flow.timeouts.start)}")
        if flow.timeouts.finish is not None:
            parts.append(f"finish within {_text(flow.timeouts.finish)}")
        lines.append("timeouts: " + ", ".join(parts))
    return lines


def _per(key: Any) -> str:
    return f" per {key.source}" if key is not None else ""


def as_json(workflow: Workflow) -> dict[str, Any]:
    flow = workflow.flow

    def key(expression: Any) -> str | None:
        return expression.source if expression is not None else None

    def seconds(delta: Any) -> float | None:
        return delta.total_seconds() if delta is not None else None

    return {
        "id": workflow.id,
        "triggers": [
            {"event": t.event, "if": t.if_.source if t.if_ else None} for t in workflow.triggers
        ],
        "cancel_on": [rule.event for rule in workflow.cancel_on],
        "controls": {
            "idempotency": key(flow.idempotency),
            "rate_limit": flow.rate_limit
            and {
                "limit": flow.rate_limit.limit,
                "period_seconds": seconds(flow.rate_limit.period),
                "key": key(flow.rate_limit.key),
            },
            "throttle": flow.throttle
            and {
                "limit": flow.throttle.limit,
                "period_seconds": seconds(flow.throttle.period),
                "burst": flow.throttle.burst,
                "key": key(flow.throttle.key),
            },
            "debounce": flow.debounce
            and {
                "period_seconds": seconds(flow.debounce.period),
                "timeout_seconds": seconds(flow.debounce.timeout),
                "key": key(flow.debounce.key),
            },
            "batch_events": flow.batch
            and {
                "max_size": flow.batch.max_size,
                "timeout_seconds": seconds(flow.batch.timeout),
                "key": key(flow.batch.key),
                "if": key(flow.batch.if_),
            },
            "concurrency": [
                {"limit": c.limit, "key": key(c.key), "scope": c.scope} for c in flow.concurrency
            ],
            "priority": flow.priority and flow.priority.run.source,
            "singleton": flow.singleton
            and {"key": key(flow.singleton.key), "mode": flow.singleton.mode},
            "timeouts": flow.timeouts
            and {
                "start_seconds": seconds(flow.timeouts.start),
                "finish_seconds": seconds(flow.timeouts.finish),
            },
        },
    }
