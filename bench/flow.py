"""Flow-control figures (issue 12): what each control costs per run start, and how
accurately a throttle spreads a backlog.

- `start_cost`: requests (DynamoDB, SQS, EventBridge, Scheduler), modelled capacity units,
  Lambda invocations and dollars per run start, for a one-step workflow with each control
  on (its keys distinct per event, so that every event starts a run), against the same
  workflow with none. Counted as `figures.cost` counts: our own calls plus what Lambda's
  SQS poller and Scheduler do on AWS.
- `throttle_accuracy`: `Throttle(limit=10, period="1m")` fed 15 events a minute for an
  hour of virtual time (a backlog that grows by 5 a minute); runs started per minute,
  from each run's step start time: the most in any minute (must be <= 10) and the fewest
  in a minute that began with runs waiting (10 means no period was starved).

The concurrency figures (runs of a key executing at once with three workers, and how long
a killed worker's slot stays taken) come from real processes, in the kill suite
(tests/reliability/test_flow_kills.py), and are quoted in README.md.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bench.figures import WRITE_OPERATIONS, _dollars, _PollerMeter
from bench.harness import RequestMeter, runtime
from infra.local import LocalRuntime
from sdk import (
    App,
    Batch,
    Concurrency,
    Context,
    Debounce,
    Event,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
)

#: Each control as `start_cost` sets it: keyword arguments of `@app.workflow`.
CONTROLS: dict[str, Callable[[], dict[str, Any]]] = {
    "none": lambda: {},
    "idempotency": lambda: {"idempotency": "event.data.key"},
    "rate_limit": lambda: {"rate_limit": RateLimit(limit=10, period="1m", key="event.data.key")},
    "throttle": lambda: {"throttle": Throttle(limit=10, period="1m", key="event.data.key")},
    "debounce": lambda: {"debounce": Debounce(period="1s", key="event.data.key")},
    "batch_events": lambda: {
        "batch_events": Batch(max_size=10, timeout="1s", key="event.data.key")
    },
    "concurrency": lambda: {"concurrency": [Concurrency(limit=2, key="event.data.key")]},
    "priority": lambda: {"priority": Priority(run="event.data.n % 2 == 0 ? 60 : 0")},
    "singleton": lambda: {"singleton": Singleton(key="event.data.key")},
    "timeouts": lambda: {"timeouts": Timeouts(start="10m", finish="1h")},
}


def _app() -> App:
    """One one-step workflow per control, each with its own trigger."""
    app = App("bench-flow")
    for control, make in CONTROLS.items():

        def start(ctx: Context) -> int:
            return int(ctx.step.run("one", lambda: len(ctx.events)))

        app.workflow(control, trigger=f"bench/{control}", **make())(start)
    return app


def _drive_starts(
    rt: LocalRuntime, meter: RequestMeter, poller: _PollerMeter, control: str, starts: int
) -> dict[str, float]:
    meter.reset()
    meter.enabled = True
    sqs_before = poller.sqs
    before = poller.invocations
    billed_before = sum(math.ceil(seconds * 1000) for seconds in poller.engine_seconds)
    for n in range(starts):
        rt.send(Event(name=f"bench/{control}", data={"key": f"k{n}", "n": n}, id=f"{control}-{n}"))
    rt.advance(timedelta(seconds=2))  # debounce and batch start after a second
    meter.enabled = False
    runs = rt.runs(workflow=control, limit=starts + 1)
    if len(runs) != starts or any(run.status != "COMPLETED" for run in runs):
        raise RuntimeError(f"{control}: not every event started a completed run")
    billed = sum(math.ceil(seconds * 1000) for seconds in poller.engine_seconds) - billed_before
    counts = {
        "wcu": meter.wcu,
        "rcu": meter.rcu,
        # Each event: EventBridge's send to the events queue.
        "sqs": meter.total("sqs") + poller.sqs - sqs_before + starts,
        "scheduler": meter.total("scheduler", {"CreateSchedule"}),
        "events": meter.total("events", {"PutEvents"}),
        "invocations": poller.invocations - before,
        "billed_ms": billed,
        "dynamodb_requests": meter.total("dynamodb"),
        "dynamodb_writes": meter.total("dynamodb", WRITE_OPERATIONS),
    }
    return {key: value / starts for key, value in counts.items()}


def start_cost(*, starts: int = 10) -> dict[str, Any]:
    """Per run start, by control: requests, capacity units, invocations and dollars."""
    by_control: dict[str, dict[str, float]] = {}
    with runtime(_app()) as rt:
        meter = RequestMeter().attach(rt.services.clients)
        poller = _PollerMeter(rt)
        for control in CONTROLS:
            per_start = _drive_starts(rt, meter, poller, control, starts)
            requests = (
                per_start["dynamodb_requests"]
                + per_start["sqs"]
                + per_start["events"]
                + per_start["scheduler"]
            )
            by_control[control] = {
                "requests": requests,
                "dynamodb_requests": per_start["dynamodb_requests"],
                "wcu": per_start["wcu"],
                "rcu": per_start["rcu"],
                "sqs": per_start["sqs"],
                "scheduler": per_start["scheduler"],
                "invocations": per_start["invocations"],
                "usd_per_million_starts": sum(_dollars(per_start).values()) * 1e6,
            }
    base = by_control["none"]
    for entry in by_control.values():
        entry["extra_requests"] = entry["requests"] - base["requests"]
        entry["extra_usd_per_million_starts"] = (
            entry["usd_per_million_starts"] - base["usd_per_million_starts"]
        )
    return {"starts": starts, "by_control": by_control}


def throttle_accuracy(*, minutes: int = 60, per_minute: int = 15) -> dict[str, Any]:
    """Starts per minute under Throttle(limit=10, period="1m") with a growing backlog."""
    limit = 10
    app = App("bench-throttle")

    @app.workflow("call", trigger="bench/call", throttle=Throttle(limit=limit, period="1m"))
    def call(ctx: Context) -> int:
        return int(ctx.step.run("call", lambda: ctx.event.data["n"]))

    with runtime(app) as rt:
        start = rt.now()
        sent = 0
        for _ in range(minutes):
            for _ in range(per_minute):
                rt.send(Event(name="bench/call", data={"n": sent}, id=f"c{sent}"))
                sent += 1
            rt.advance(timedelta(minutes=1))
        starts = sorted(
            rt.history(run.run_id)[0].started_at
            for run in rt.runs(workflow="call", limit=sent + 1)
            if rt.history(run.run_id)
        )
    per_period = collections.Counter(int((s - start).total_seconds() // 60) for s in starts)
    counts = [per_period.get(minute, 0) for minute in range(minutes)]
    # Arrivals outpace the limit, so every minute after the first begins with a backlog.
    backlogged = counts[1:]
    return {
        "limit": limit,
        "minutes": minutes,
        "events": sent,
        "started": len(starts),
        "max_starts_per_period": max(counts),
        "min_starts_per_backlogged_period": min(backlogged) if backlogged else None,
        "starts_per_period": counts,
    }
