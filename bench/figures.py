"""The figures: each a function of its sizes and trial count, returning plain data.

Every timing figure is a ratio of two things measured side by side in the same process,
interleaved trial by trial, and reported as the ratio of medians, so that the noise of
a shared machine falls on both sides alike.
"""

from __future__ import annotations

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
LAMBDA_MEMORY_MB = 256  # the assumed memory size of the engine function
STEPS_PER_INVOCATION = 10  # the cost model's workflow shape


# -- step overhead (and DBOS) ------------------------------------------------------------


def step_overhead(*, steps: int = 100, trials: int = 7, dbos: Any | None = None) -> dict[str, Any]:
    """Engine time per inline step vs one bare conditional put (and DBOS's time per step).

    Each trial: one engine Lambda invocation that runs a fresh `steps`-step inline
    workflow from its start message to completion (load, claim, `steps` step writes,
    final run write), and `steps` bare conditional puts of items of the same shape (pk,
    sk, one blob `r` copied from a real step record) into the same table, through the
    same client; and, when DBOS is installed, the same workflow in DBOS. The order
    rotates each trial. Per-trial figures are per step; the ratio is of the medians.
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
        if dbos is not None:
            dbos.run(steps)

        engine_per_step: list[float] = []
        put_per_step: list[float] = []
        dbos_per_step: list[float] = []

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

        def dbos_trial() -> None:
            assert dbos is not None
            settle()
            dbos_per_step.append(dbos.run(steps) / steps)

        order = [engine_trial, put_trial] + ([dbos_trial] if dbos is not None else [])
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
    if dbos is not None:
        dbos_ms = median(dbos_per_step) * 1000
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
        "sqs_requests_per_step": small["sqs"] / steps,
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


def cost_app(segments: int) -> App:
    """`segments` invocations of STEPS_PER_INVOCATION inline steps, each ended by a sleep."""
    app = App("bench")

    @app.workflow("steady", trigger="bench/steady")
    def flow(ctx: Context) -> int:
        for segment in range(segments):
            for index in range(STEPS_PER_INVOCATION):
                ctx.step.run(f"s{segment}-{index}", _echo, "steady", index)
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


def _drive_cost(segments: int) -> dict[str, float]:
    with runtime(cost_app(segments)) as rt:
        meter = RequestMeter().attach(rt.services.clients)
        poller = _PollerMeter(rt)
        [run_id] = rt.send(Event(name="bench/steady", data={}))
        for _ in range(segments):
            rt.advance(timedelta(minutes=1, seconds=1))
        meter.enabled = False
        if rt.run(run_id).status != "COMPLETED":
            raise RuntimeError("the cost workflow did not complete")
        billed_ms = sum(math.ceil(seconds * 1000) for seconds in poller.engine_seconds)
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
        "dynamodb_writes": counts["wcu"] * PRICE_WRITE_UNIT,
        "dynamodb_reads": counts["rcu"] * PRICE_READ_UNIT,
        "sqs": counts["sqs"] * PRICE_SQS_REQUEST,
        "scheduler": counts["scheduler"] * PRICE_SCHEDULER,
        "eventbridge": counts["events"] * PRICE_EVENTS,
        "lambda_requests": counts["invocations"] * PRICE_LAMBDA_REQUEST,
        "lambda_duration": gb_seconds * PRICE_LAMBDA_GB_SECOND,
    }


def cost(*, segments: int = 6) -> dict[str, Any]:
    """Dollars per million steps in steady state, STEPS_PER_INVOCATION steps per invocation.

    Two runs of the same shape, of 2 and `segments` invocations, are counted whole; the
    difference divided by the extra steps is the steady-state cost of a step, start-up
    excluded (reported apart as the cost of starting a run).
    """
    short = _drive_cost(2)
    long = _drive_cost(segments)
    extra_steps = (segments - 2) * STEPS_PER_INVOCATION
    per_step = {key: (long[key] - short[key]) / extra_steps for key in long}
    dollars = _dollars(per_step)
    per_million = {key: value * 1e6 for key, value in dollars.items()}
    start = {key: short[key] - 2 * STEPS_PER_INVOCATION * per_step[key] for key in short}
    # The trigger event: its PutEvents, and EventBridge's sends to the trigger, waits and
    # cancel queues (made by EventBridge, so no hook of ours sees them).
    start["events"] += 1
    start["sqs"] += 3
    start_dollars = sum(_dollars(start).values())
    return {
        "cost_per_million_steps_usd": sum(per_million.values()),
        "breakdown_usd_per_million_steps": per_million,
        "per_step": per_step,
        "steps_per_invocation": STEPS_PER_INVOCATION,
        "lambda_memory_mb": LAMBDA_MEMORY_MB,
        "engine_ms_per_invocation": per_step["billed_ms"] * STEPS_PER_INVOCATION,
        "run_start_usd_per_million_runs": start_dollars * 1e6,
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
    is that of `rt.send` (EventBridge put, the three event queues' handlers, the
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

HANDLER_MODULES = ("handlers.engine", "handlers.trigger", "handlers.waits", "handlers.cancel")
_IMPORT_TIMER = (
    "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
)


def _import_seconds(module: str) -> float:
    # Cold start with warm .pyc files, as a deployment package that ships them has: the
    # first (untimed) import writes them, even where PYTHONDONTWRITEBYTECODE is set.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_TIMER.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return float(result.stdout.strip().splitlines()[-1])


def cold_start(*, trials: int = 7) -> dict[str, Any]:
    """Import time of each handler module vs `import boto3`, each in a fresh interpreter.

    Each sample is one new interpreter that times the one import with perf_counter;
    the modules take turns in rotating order; the ratio is the slowest handler's median
    over boto3's median. Every handler imports boto3, so boto3 alone is the floor.
    """
    modules = ("boto3", *HANDLER_MODULES)
    for module in modules:  # compile the .pyc files first
        _import_seconds(module)
    samples: dict[str, list[float]] = {module: [] for module in modules}
    for trial in range(trials):
        shift = trial % len(modules)
        for module in modules[shift:] + modules[:shift]:
            samples[module].append(_import_seconds(module))
    medians = {module: median(values) * 1000 for module, values in samples.items()}
    slowest = max(HANDLER_MODULES, key=lambda module: medians[module])
    return {
        "cold_start_ratio": medians[slowest] / medians["boto3"],
        "slowest_handler": slowest,
        "import_ms": medians,
    }
