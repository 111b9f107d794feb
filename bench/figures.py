"""The figures: each a function of its sizes and trial count, returning plain data.

Every timing figure is a ratio of two things measured side by side in the same process,
interleaved trial by trial, and reported as the ratio of medians, so that the noise of
a shared machine falls on both sides alike.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

from bench.harness import (
    RequestMeter,
    create_run,
    inline_app,
    invoke_engine,
    median,
    runtime,
    settle,
)
from bench.template import engine_memory_mb, queues_delivered
from engine.ids import StepKey, waiter_key
from engine.model import StepKind, StepRecord, StepStatus, WaitSpec
from infra.dynamo_table import encode_step
from infra.local import LocalRuntime
from sdk import App, Context, Event

# -- AWS list prices (us-east-1, on-demand), USD ----------------------------------------

PRICE_WRITE_UNIT = 0.625 / 1e6  # DynamoDB on-demand, per write request unit
PRICE_READ_UNIT = 0.125 / 1e6  # DynamoDB on-demand, per read request unit
PRICE_SQS_REQUEST = 0.40 / 1e6  # SQS standard, per request (64 KB chunk)
PRICE_SCHEDULER = 1.00 / 1e6  # EventBridge Scheduler, per scheduled invocation
PRICE_EVENTS = 1.00 / 1e6  # EventBridge, per custom event published
PRICE_LAMBDA_REQUEST = 0.20 / 1e6  # Lambda, per invocation
PRICE_LAMBDA_GB_SECOND = 0.0000166667  # Lambda x86, per GB-second
LAMBDA_MEMORY_MB = engine_memory_mb()  # the engine function's MemorySize in template.yaml
STEPS_PER_INVOCATION = 10  # the cost model's workflow shape
# Lambda's SQS poller long-polls each consumed queue while it is idle: assumed 5 pollers
# (Lambda's starting number), each a 20 s long poll, i.e. 15 empty receives a minute per
# queue whatever the traffic; spread over STEPS_PER_MONTH steps.
POLLERS = 5
LONG_POLL_SECONDS = 20
STEPS_PER_MONTH = 10_000_000
EMPTY_RECEIVES_PER_QUEUE_MONTH = POLLERS * 30 * 86_400 / LONG_POLL_SECONDS


# -- step overhead (and DBOS) ------------------------------------------------------------


def step_overhead(
    *, steps: int = 100, trials: int = 7, dbos: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Engine time per inline step vs one bare conditional put (and DBOS's time per step).

    Each trial: one engine Lambda invocation that runs a fresh `steps`-step inline
    workflow from its start message to completion (load, claim, `steps` step writes,
    final run write), and `steps` bare conditional puts of items of the same shape (pk,
    sk, one blob `r` copied from a real step record) into the same table, through the
    same client; and, when DBOS is installed, the same workflow in DBOS (one peer per
    entry of `dbos`, e.g. its SQLite file on disk and on a tmpfs). The order rotates
    each trial. Per-trial figures are per step; the ratio is of the medians.
    """
    app = inline_app(steps)
    with runtime(app) as rt:
        client = rt.services.clients.dynamodb
        table = rt.settings.table
        # Warm up (client, imports, pydantic validators) and take a real record's blob.
        warm = create_run(rt, "inline")
        invoke_engine(rt, warm)
        loaded = rt.services.store.load(warm)
        assert loaded is not None and loaded.run.status.value == "COMPLETED"
        blob = encode_step(next(iter(loaded.steps.values())))
        peers = dbos or {}
        for peer in peers.values():
            peer.run(steps)

        engine_per_step: list[float] = []
        put_per_step: list[float] = []
        dbos_per_step: dict[str, list[float]] = {label: [] for label in peers}

        def engine_trial() -> None:
            run_id = create_run(rt, "inline")
            engine_per_step.append(invoke_engine(rt, run_id) / steps)
            _delete_partition(rt, f"RUN#{run_id}")

        def put_trial() -> None:
            pk = f"RUN#bare-{uuid.uuid4()}"
            items = [
                {"pk": {"S": pk}, "sk": {"S": f"STEP#{StepKey((i,))}"}, "r": {"S": blob}}
                for i in range(steps)
            ]
            settle()
            started = time.perf_counter()
            for item in items:
                client.put_item(
                    TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)"
                )
            put_per_step.append((time.perf_counter() - started) / steps)
            _delete_partition(rt, pk)

        def dbos_trial(label: str) -> Any:
            def trial() -> None:
                settle()
                dbos_per_step[label].append(peers[label].run(steps) / steps)

            return trial

        order = [engine_trial, put_trial] + [dbos_trial(label) for label in peers]
        for trial in range(trials):
            shift = trial % len(order)
            for run in order[shift:] + order[:shift]:
                run()

    engine_ms = median(engine_per_step) * 1000
    put_ms = median(put_per_step) * 1000
    result: dict[str, Any] = {
        "steps": steps,
        "trials": trials,
        "engine_ms_per_step": engine_ms,
        "bare_put_ms": put_ms,
        "step_overhead_ratio": engine_ms / put_ms,
        "record_bytes": len(blob.encode()),
    }
    for index, (label, samples) in enumerate(dbos_per_step.items()):
        dbos_ms = median(samples) * 1000
        result[f"dbos_ms_per_step_{label}"] = dbos_ms
        result[f"dbos_ratio_{label}"] = engine_ms / dbos_ms
        if index == 0:
            result.update(dbos_ms_per_step=dbos_ms, dbos_ratio=engine_ms / dbos_ms)
    return result


def _delete_partition(rt: LocalRuntime, pk: str) -> None:
    """Remove what a trial wrote (untimed). moto's Query scans the whole table, so a table
    that grew trial by trial would make each load slower than the last; on DynamoDB a
    Query's cost does not depend on the table's size."""
    client = rt.services.clients.dynamodb
    keys = [
        {"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}}
        for item in client.query(
            TableName=rt.settings.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
        )["Items"]
    ]
    for start in range(0, len(keys), 25):
        client.batch_write_item(RequestItems={rt.settings.table: keys[start : start + 25]})


# -- requests over a realistic mix ---------------------------------------------------------

MIX_SEGMENTS = 5


def mix_app(inline: int) -> App:
    """`inline` steps, a short sleep, a long sleep, a resolved wait and a timed-out wait."""
    app = App("bench")

    @app.workflow("mix", trigger="bench/mix")
    def flow(ctx: Context) -> int:
        order = ctx.event.data["order"]

        def segment(name: str) -> None:
            for index in range(inline):
                ctx.step.run(f"{name}-{index}", _echo, order, index)

        segment("a")
        ctx.step.sleep("short-sleep", "5m")  # an SQS delayed message
        segment("b")
        ctx.step.sleep("long-sleep", "2h")  # an EventBridge Scheduler schedule
        segment("c")
        paid = ctx.step.wait_for_event("paid", event="bench/paid", match="data.order", timeout="1d")
        segment("d")
        shipped = ctx.step.wait_for_event(
            "shipped", event="bench/shipped", match="data.order", timeout="10m"
        )
        segment("e")
        return int(paid is not None) + int(shipped is not None)

    return app


def _echo(order: str, index: int) -> dict[str, Any]:
    return {"order": order, "index": index}


MIX_OTHER_STEPS = 4  # two sleeps and two waits


def _drive_mix(inline: int) -> dict[str, Any]:
    with runtime(mix_app(inline)) as rt:
        meter = RequestMeter().attach(rt.services.clients)
        poller = _PollerMeter(rt)
        [run_id] = rt.send(Event(name="bench/mix", data={"order": "o-1"}))
        rt.advance(timedelta(minutes=5, seconds=1))
        rt.advance(timedelta(hours=2, seconds=1))
        rt.send(Event(name="bench/paid", data={"order": "o-1"}))
        rt.advance(timedelta(minutes=10, seconds=1))
        meter.enabled = False
        view = rt.run(run_id)
        if view.status != "COMPLETED" or view.output != 1:
            raise RuntimeError(f"the mix workflow ended {view.status} with {view.output!r}")
        return {
            "steps": inline * MIX_SEGMENTS + MIX_OTHER_STEPS,
            "dynamodb_writes": meter.total("dynamodb", WRITE_OPERATIONS),
            "dynamodb_reads": meter.total("dynamodb", READ_OPERATIONS),
            "sqs": meter.total("sqs"),
            # The poller's receives that return messages and its deletes (and the
            # Scheduler's sends), and EventBridge's sends of the two events to each queue
            # the template's rules deliver them to.
            "sqs_all": meter.total("sqs")
            + poller.sqs
            + len(queues_delivered(rt.app, "bench/mix"))
            + len(queues_delivered(rt.app, "bench/paid")),
            "scheduler": meter.total("scheduler"),
            "events": meter.total("events"),
            "by_operation": {f"{s}.{op}": n for (s, op), n in sorted(meter.counts.items())},
        }


WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
READ_OPERATIONS = {"GetItem", "Query", "BatchGetItem", "Scan", "TransactGetItems"}


def request_mix(*, inline: int = 10) -> dict[str, Any]:
    """AWS requests per step over the mix, and the marginal cost of an inline step."""
    small = _drive_mix(inline)
    large = _drive_mix(inline * 2)
    steps = small["steps"]
    extra_inline = large["steps"] - small["steps"]
    return {
        "definition": (
            f"one run of the mix workflow ({inline} inline steps, then a 5 min sleep, "
            f"{inline} steps, a 2 h sleep, {inline} steps, a wait resolved by an event, "
            f"{inline} steps, a wait that times out, {inline} steps: {steps} steps of any "
            "kind), counting every AWS request the handlers make from the trigger event "
            "to completion (start, resumes, the event's resolution), divided by its steps"
        ),
        "steps": steps,
        "dynamodb_writes_per_step": small["dynamodb_writes"] / steps,
        "dynamodb_reads_per_step": small["dynamodb_reads"] / steps,
        "sqs_requests_per_step": small["sqs_all"] / steps,
        "sqs_requests_per_step_ours": small["sqs"] / steps,
        "scheduler_requests_per_step": small["scheduler"] / steps,
        "dynamodb_writes_per_inline_step": (large["dynamodb_writes"] - small["dynamodb_writes"])
        / extra_inline,
        "dynamodb_reads_per_inline_step": (large["dynamodb_reads"] - small["dynamodb_reads"])
        / extra_inline,
        "sqs_requests_per_inline_step": (large["sqs"] - small["sqs"]) / extra_inline,
        "by_operation": small["by_operation"],
    }


# -- the step gate ---------------------------------------------------------------------


def step_gate(*, step_ms: float = 20.0, steps: int = 50) -> dict[str, Any]:
    """What the cancel check costs: reads per inline step for steps of `step_ms`.

    A running invocation looks at its run item before a new step only when its last look
    is older than `control_interval` (0.5 s), so no step starts later than that after a
    cancel. The mix's 1 ms steps never trigger a look; this runs one invocation of
    `steps` steps that each take `step_ms` of real time (a typical API call) and counts
    the GetItem requests the gate made, per step.
    """
    app = App("bench")

    @app.workflow("gated", trigger="bench/gated")
    def flow(ctx: Context) -> int:
        for index in range(steps):
            ctx.step.run(f"call-{index}", time.sleep, step_ms / 1000)
        return steps

    with runtime(app) as rt:
        run_id = create_run(rt, "gated")
        meter = RequestMeter().attach(rt.services.clients, services=("dynamodb",))
        seconds = invoke_engine(rt, run_id)
        meter.enabled = False
        if rt.run(run_id).status != "COMPLETED":
            raise RuntimeError(f"the gated workflow ended {rt.run(run_id).status}")
        looks = meter.counts[("dynamodb", "GetItem")]
    return {
        "step_ms": step_ms,
        "steps": steps,
        "invocation_seconds": seconds,
        "gate_reads": looks,
        "gate_reads_per_step": looks / steps,
    }


# -- cost ------------------------------------------------------------------------------------


def cost_app(segments: int, output: Any = None) -> App:
    """`segments` invocations of STEPS_PER_INVOCATION inline steps, each ended by a sleep;
    each step returns `output(segment, index)` (default: a tiny dict)."""
    app = App("bench")
    make = output or (lambda segment, index: _echo("steady", index))

    @app.workflow("steady", trigger="bench/steady")
    def flow(ctx: Context) -> int:
        for segment in range(segments):
            for index in range(STEPS_PER_INVOCATION):
                ctx.step.run(f"s{segment}-{index}", make, segment, index)
            ctx.step.sleep(f"pause-{segment}", "1m")
        return segments

    return app


class _PollerMeter:
    """What Lambda's SQS poller and Scheduler do on AWS, which LocalRuntime plays here:
    receives that return messages, batch deletes, and the schedules' sends."""

    def __init__(self, rt: LocalRuntime) -> None:
        self.sqs = 0
        self._rt = rt
        rt.clients.sqs.meta.events.register("after-call.sqs.*", self._hook)

    @property
    def engine_seconds(self) -> list[float]:
        return [s for seconds in self._rt.invocation_seconds.values() for s in seconds]

    @property
    def invocations(self) -> int:
        return len(self.engine_seconds)

    def _hook(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        name = model.name
        if name == "ReceiveMessage":
            self.sqs += bool(parsed.get("Messages"))
        elif name in ("DeleteMessageBatch", "ChangeMessageVisibilityBatch", "SendMessage"):
            self.sqs += 1


def kilobyte_output(segment: int, index: int) -> dict[str, Any]:
    """About 1 KB of JSON as an API returns it: ids, names, amounts, times, flags; drawn
    from a seeded generator per step, so it compresses as such data does (not as a
    repeated character would)."""
    import random

    rng = random.Random(segment * 1000 + index)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    lines = []
    while len(json.dumps(lines)) < 900:
        lines.append(
            {
                "id": f"{rng.getrandbits(64):016x}",
                "sku": f"SKU-{rng.randrange(10**6):06d}",
                "name": " ".join(rng.choice(words) for _ in range(2)),
                "qty": rng.randrange(1, 20),
                "price": round(rng.uniform(1, 500), 2),
                "at": f"2026-03-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:00:00Z",
                "gift": rng.random() < 0.2,
            }
        )
    return {"order": f"o-{segment}-{index}", "lines": lines}


def _drive_cost(segments: int, output: Any = None) -> dict[str, float]:
    with runtime(cost_app(segments, output)) as rt:
        meter = RequestMeter().attach(rt.services.clients)
        poller = _PollerMeter(rt)
        [run_id] = rt.send(Event(name="bench/steady", data={}))
        for _ in range(segments):
            rt.advance(timedelta(minutes=1, seconds=1))
        meter.enabled = False
        if rt.run(run_id).status != "COMPLETED":
            raise RuntimeError("the cost workflow did not complete")
        billed = [math.ceil(seconds * 1000) for seconds in poller.engine_seconds]
        # The median invocation's billed time, for every invocation: one invocation that
        # a busy machine stalls would otherwise swing the per-step difference below.
        billed_ms = median([float(ms) for ms in billed]) * len(billed)
        return {
            "wcu": meter.wcu,
            "rcu": meter.rcu,
            "sqs": meter.total("sqs") + poller.sqs,
            "sqs_ours": meter.total("sqs"),
            "scheduler": meter.total("scheduler", {"CreateSchedule"}),
            "events": meter.total("events", {"PutEvents"}),
            "invocations": poller.invocations,
            "billed_ms": billed_ms,
            "dynamodb_writes": meter.total("dynamodb", WRITE_OPERATIONS),
        }


def _dollars(counts: dict[str, float]) -> dict[str, float]:
    gb_seconds = counts["billed_ms"] / 1000 * LAMBDA_MEMORY_MB / 1024
    return {
        "sqs_empty_receives": counts.get("sqs_empty", 0.0) * PRICE_SQS_REQUEST,
        "dynamodb_writes": counts["wcu"] * PRICE_WRITE_UNIT,
        "dynamodb_reads": counts["rcu"] * PRICE_READ_UNIT,
        "sqs": counts["sqs"] * PRICE_SQS_REQUEST,
        "scheduler": counts["scheduler"] * PRICE_SCHEDULER,
        "eventbridge": counts["events"] * PRICE_EVENTS,
        "lambda_requests": counts["invocations"] * PRICE_LAMBDA_REQUEST,
        "lambda_duration": gb_seconds * PRICE_LAMBDA_GB_SECOND,
    }


def cost(*, segments: int = 6) -> dict[str, Any]:
    """Dollars per million steps in steady state, with tiny and with 1 KB step outputs."""
    tiny = _cost(segments=segments)
    kilobyte = _cost(segments=segments, output=kilobyte_output)
    return {
        **tiny,
        "cost_per_million_steps_1kb_usd": kilobyte["cost_per_million_steps_usd"],
        "kilobyte": kilobyte,
        "output_bytes_1kb": len(json.dumps(kilobyte_output(0, 0))),
    }


def _cost(*, segments: int = 6, output: Any = None) -> dict[str, Any]:
    """Dollars per million steps in steady state, STEPS_PER_INVOCATION steps per invocation.

    Two runs of the same shape, of 2 and `segments` invocations, are counted whole; the
    difference divided by the extra steps is the steady-state cost of a step, start-up
    excluded (reported apart as the cost of starting a run). SQS counts our sends and
    the poller's receives that return messages and its deletes, plus the work queue's
    share of the poller's empty long-poll receives (POLLERS, LONG_POLL_SECONDS,
    STEPS_PER_MONTH).
    """
    short = _drive_cost(2, output)
    long = _drive_cost(segments, output)
    extra_steps = (segments - 2) * STEPS_PER_INVOCATION
    per_step = {key: (long[key] - short[key]) / extra_steps for key in long}
    per_step["sqs_empty"] = EMPTY_RECEIVES_PER_QUEUE_MONTH / STEPS_PER_MONTH
    dollars = _dollars(per_step)
    per_million = {key: value * 1e6 for key, value in dollars.items()}
    start = {key: short[key] - 2 * STEPS_PER_INVOCATION * per_step[key] for key in short}
    # The trigger event: its PutEvents, and EventBridge's sends to the queues the
    # template's rules deliver it to (made by EventBridge, so no hook of ours sees them).
    start["events"] += 1
    start["sqs"] += len(queues_delivered(cost_app(2, output), "bench/steady"))
    start_dollars = sum(_dollars(start).values())
    return {
        "cost_per_million_steps_usd": sum(per_million.values()),
        "breakdown_usd_per_million_steps": per_million,
        "per_step": per_step,
        "steps_per_invocation": STEPS_PER_INVOCATION,
        "lambda_memory_mb": LAMBDA_MEMORY_MB,
        "engine_ms_per_invocation": per_step["billed_ms"] * STEPS_PER_INVOCATION,
        "run_start_usd_per_million_runs": start_dollars * 1e6,
        "poller_assumption": (
            f"{POLLERS} pollers x {LONG_POLL_SECONDS} s long polls on the work queue: "
            f"{EMPTY_RECEIVES_PER_QUEUE_MONTH:,.0f} empty receives a month, spread over "
            f"{STEPS_PER_MONTH:,} steps a month (at 1,000,000 a month they alone would add "
            f"${EMPTY_RECEIVES_PER_QUEUE_MONTH / 1e6 * PRICE_SQS_REQUEST * 1e6:.2f} per "
            "million steps)"
        ),
    }


# -- resume ------------------------------------------------------------------------------------


def resume(*, sizes: tuple[int, ...] = (10, 100, 1000), trials: int = 5) -> dict[str, Any]:
    """Resuming a run with N recorded steps vs a bare paginated Query of the same items.

    The resume is one engine Lambda invocation on a run whose N steps are recorded: it
    loads the history (one paginated Query), claims the run, replays the N steps, runs
    the next (new) step and completes the run. Between trials the new step and the run
    item are put back as they were (untimed). The bare side is the same strongly
    consistent Query, paginated, of the same partition through the same client.
    """
    return {str(size): _resume_one(size, trials) for size in sizes}


def _resume_one(size: int, trials: int) -> dict[str, float]:
    app = inline_app(size + 1, name="resume")
    with runtime(app) as rt:
        client = rt.services.clients.dynamodb
        table = rt.settings.table
        run_id = create_run(rt, "resume")
        _record_steps(rt, run_id, size)
        pk = {"S": f"RUN#{run_id}"}
        run_key = {"pk": pk, "sk": {"S": "RUN"}}
        run_item = client.get_item(TableName=table, Key=run_key, ConsistentRead=True)["Item"]
        new_step = {"pk": pk, "sk": {"S": f"STEP#{StepKey((size,))}"}}

        def reset() -> None:
            client.delete_item(TableName=table, Key=new_step)
            client.put_item(TableName=table, Item=run_item)

        def bare_query() -> float:
            kwargs: dict[str, Any] = {
                "TableName": table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": pk},
                "ConsistentRead": True,
            }
            settle()
            started = time.perf_counter()
            while True:
                page = client.query(**kwargs)
                if "LastEvaluatedKey" not in page:
                    return time.perf_counter() - started
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

        def resume_once() -> float:
            elapsed = invoke_engine(rt, run_id)
            reset()
            return elapsed

        resume_once()  # warm-up
        bare_query()
        engine_times: list[float] = []
        query_times: list[float] = []
        for trial in range(trials):
            if trial % 2:
                engine_times.append(resume_once())
                query_times.append(bare_query())
            else:
                query_times.append(bare_query())
                engine_times.append(resume_once())
        loaded = rt.services.store.load(run_id)
        assert loaded is not None and len(loaded.steps) == size
    return {
        "resume_ms": median(engine_times) * 1000,
        "query_ms": median(query_times) * 1000,
        "ratio": median(engine_times) / median(query_times),
    }


def _record_steps(rt: LocalRuntime, run_id: str, count: int) -> None:
    """Write `count` completed step records as the engine writes them (batched, untimed)."""
    now = rt.clock.now()
    rt.services.store.write_steps(
        [
            (
                run_id,
                StepRecord(
                    key=StepKey((index,)),
                    id=f"step-{index}",
                    kind=StepKind.RUN,
                    status=StepStatus.COMPLETED,
                    attempts=1,
                    output={"index": index, "ok": True},
                    started_at=now,
                    ended_at=now,
                ),
            )
            for index in range(count)
        ]
    )


# -- waits at scale ------------------------------------------------------------------------

WAIT_EVENT = "bench/order.paid"


def payment_app() -> App:
    app = App("bench")

    @app.workflow("await-payment", trigger="bench/order.created")
    def flow(ctx: Context) -> bool:
        paid = ctx.step.wait_for_event("paid", event=WAIT_EVENT, match="data.orderId", timeout="7d")
        return paid is not None

    return app


def wait_match(*, sizes: tuple[int, ...] = (10, 1000, 10_000), events: int = 3) -> dict[str, Any]:
    """Requests and time to resolve one event, with N runs waiting on other keys.

    The N other waits are written straight into the table, as the engine writes them
    (tests/test_scale.py does the same). Each measured event matches one waiting run;
    its requests are counted from the bus to the woken run's completion, and its time
    is that of `rt.send` (EventBridge put, the events function's one invocation, the
    engine's wake-up of the matched run).
    """
    out: dict[str, Any] = {}
    for size in sizes:
        with runtime(payment_app()) as rt:
            targets = []
            for index in range(events):
                [run_id] = rt.send(
                    Event(name="bench/order.created", data={"orderId": f"target-{index}"})
                )
                targets.append(run_id)
            _add_waiting_runs(rt, size)
            meter = RequestMeter().attach(rt.services.clients)
            times = []
            counts: list[dict[str, int]] = []
            for index, run_id in enumerate(targets):
                meter.reset()
                started = time.perf_counter()
                rt.send(Event(name=WAIT_EVENT, data={"orderId": f"target-{index}"}))
                times.append(time.perf_counter() - started)
                counts.append(
                    {
                        op: n
                        for (service, op), n in sorted(meter.counts.items())
                        if service == "dynamodb"
                    }
                )
                if rt.run(run_id).output is not True:
                    raise RuntimeError("the matching event did not resolve its wait")
        out[str(size)] = {
            "dynamodb_requests": counts[0],
            "dynamodb_request_total": sum(counts[0].values()),
            "consistent": all(c == counts[0] for c in counts),
            "ms": median(times) * 1000,
        }
    first = out[str(sizes[0])]["dynamodb_requests"]
    flat = all(entry["dynamodb_requests"] == first for entry in out.values())
    return {"wait_match_requests_flat": flat, "by_waiting_runs": out}


def _add_waiting_runs(rt: LocalRuntime, count: int) -> None:
    now = rt.clock.now()
    rt.services.store.write_steps(
        [
            (
                f"bulk-{index}",
                StepRecord(
                    key=StepKey((0,)),
                    id="paid",
                    kind=StepKind.WAIT,
                    status=StepStatus.WAITING,
                    started_at=now,
                    wake_at=now + timedelta(days=7),
                    wait=WaitSpec(
                        event=WAIT_EVENT,
                        index_key=waiter_key(WAIT_EVENT, "data.orderId", f"other-{index}"),
                        match="data.orderId",
                        since=now,
                    ),
                    indexed=True,
                ),
            )
            for index in range(count)
        ]
    )


# -- cold start ------------------------------------------------------------------------------

# A fresh interpreter, as Lambda starts one: everything from the first import to the
# handler's return is timed (imports, the clients, the services, one message through the
# engine's handler: its load Query, claim, step write and final run write).
_ENGINE_COLD = """
import json, sys, time
started = time.perf_counter()
from handlers.engine import handler
response = handler(json.loads(sys.argv[1]), None)
elapsed = time.perf_counter() - started
assert not response.get("batchItemFailures"), response
print(elapsed)
"""
# The floor: the same interpreter start, `import boto3`, a client and one PutItem.
_BOTO3_COLD = """
import sys, time
started = time.perf_counter()
import boto3
client = boto3.client("dynamodb")
client.put_item(
    TableName=sys.argv[1],
    Item={"pk": {"S": "COLD#" + sys.argv[2]}, "sk": {"S": "STEP#0"}, "r": {"S": "x" * 100}},
    ConditionExpression="attribute_not_exists(pk)",
)
print(time.perf_counter() - started)
"""


def _child_seconds(script: str, args: list[str], env: dict[str, str]) -> float:
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    if result.returncode != 0:
        raise RuntimeError(f"a cold-start interpreter failed: {result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def cold_start(*, trials: int = 7) -> dict[str, Any]:
    """The engine's first invocation vs `import boto3`, a client and one PutItem.

    Both run in fresh interpreters (warm .pyc files, as a deployment package that ships
    them has) against one moto server on localhost, so both pay real HTTP to it; the
    sides take turns. The engine side imports its handler, builds its services from
    STEPLINE_* variables (bench/cold_app.py, one workflow of one step) and runs one
    start message of a new run to its completion. The ratio is of the medians. Lambda's
    own start (its runtime, the sandbox) is on both sides and left out.
    """
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from engine.ids import run_id_for
    from engine.model import RunRecord, RunStatus
    from infra.clients import Clients
    from infra.resources import create_resources
    from infra.settings import Settings
    from infra.wiring import build_services, load_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        region = "us-east-1"
        session = boto3.session.Session(
            region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        base = Settings(region=region, endpoint_url=endpoint)
        created = create_resources(Clients(base, session), "stepline-cold")
        settings = created.settings.model_copy(
            update={"region": region, "endpoint_url": endpoint, "app": "bench.cold_app:app"}
        )
        services = build_services(load_app(settings.app), settings, session=session)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(settings.to_env())
        env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=region,
            AWS_REGION=region,
            AWS_ENDPOINT_URL=endpoint,
        )

        def new_run() -> str:
            from datetime import UTC, datetime

            now = datetime.now(UTC)
            event = Event(name="bench/cold", data={}, id=str(uuid.uuid4()), ts=now)
            run_id = run_id_for("cold", event.id)
            run = RunRecord(
                run_id=run_id,
                workflow_id="cold",
                status=RunStatus.QUEUED,
                created_at=now,
                updated_at=now,
                event_id=event.id,
                event_name=event.name,
                event_ts=now,
            )
            services.store.create_run(run, event, [])
            return run_id

        def engine_side() -> float:
            from bench.harness import work_event

            run_id = new_run()
            seconds = _child_seconds(_ENGINE_COLD, [json.dumps(work_event(run_id))], env)
            loaded = services.store.load(run_id)
            if loaded is None or loaded.run.status is not RunStatus.COMPLETED:
                raise RuntimeError("the cold engine did not complete its run")
            return seconds

        def boto3_side() -> float:
            return _child_seconds(_BOTO3_COLD, [settings.table, str(uuid.uuid4())], env)

        engine_side()  # compile the .pyc files first
        boto3_side()
        samples: dict[str, list[float]] = {"engine": [], "boto3": []}
        for trial in range(trials):
            if trial % 2:
                samples["engine"].append(engine_side())
                samples["boto3"].append(boto3_side())
            else:
                samples["boto3"].append(boto3_side())
                samples["engine"].append(engine_side())
    finally:
        server.stop()
    medians = {side: median(values) * 1000 for side, values in samples.items()}
    return {
        "cold_start_ratio": medians["engine"] / medians["boto3"],
        "engine_first_invocation_ms": medians["engine"],
        "boto3_put_ms": medians["boto3"],
        "trials": trials,
        "definition": (
            "fresh interpreter: import handlers.engine, build services, one start message "
            "of a one-step run to completion; vs import boto3, a client, one PutItem; both "
            "against a local moto server over HTTP"
        ),
    }
