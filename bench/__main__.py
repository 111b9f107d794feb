"""`python -m bench [--quick] [--json]`: Stepline against its physical floor and DBOS.

Prints a table of the figures and their goals; with `--json`, the last line of stdout is
one JSON object with every figure and its details. See README.md, "Performance".
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

from bench import figures, flow, scale
from bench.dbos_peer import TMPFS, dbos_peer, filesystem_of


@dataclass(frozen=True)
class Sizes:
    overhead_trials: int
    resume_trials: int
    resume_sizes: tuple[int, ...]
    wait_sizes: tuple[int, ...]
    wait_events: int
    cold_trials: int
    cost_segments: int
    mix_inline: int
    resume_cpu_steps: int
    resume_cpu_trials: int
    hol_step_s: float
    hol_trials: int
    scale_samples: int
    steps: int = 100
    few_steps: int = 10
    gate_steps: int = 50
    flow_starts: int = 20
    throttle_minutes: int = 60


QUICK = Sizes(
    overhead_trials=15,
    resume_trials=9,
    resume_sizes=(10, 100, 1000),
    wait_sizes=(10, 1000, 10_000),
    wait_events=3,
    cold_trials=11,
    cost_segments=6,
    mix_inline=10,
    flow_starts=10,
    throttle_minutes=10,
    resume_cpu_steps=10_000,
    resume_cpu_trials=3,
    hol_step_s=3.0,
    hol_trials=1,
    scale_samples=20,
)
FULL = Sizes(
    overhead_trials=41,
    resume_trials=21,
    resume_sizes=(10, 100, 1000),
    wait_sizes=(10, 1000, 10_000),
    wait_events=5,
    cold_trials=25,
    cost_segments=10,
    mix_inline=10,
    resume_cpu_steps=10_000,
    resume_cpu_trials=7,
    hol_step_s=3.0,
    hol_trials=3,
    scale_samples=50,
)
# Tiny sizes for the smoke test: shapes and types, not meaningful numbers.
SMOKE = Sizes(
    overhead_trials=1,
    resume_trials=1,
    resume_sizes=(3,),
    wait_sizes=(2, 4),
    wait_events=1,
    cold_trials=1,
    cost_segments=3,
    mix_inline=2,
    resume_cpu_steps=20,
    resume_cpu_trials=1,
    hol_step_s=0.3,
    hol_trials=1,
    scale_samples=2,
    steps=5,
    few_steps=2,
    gate_steps=5,
    flow_starts=1,
    throttle_minutes=2,
)

# (key, goal text, test of the goal) for the headline figures.
GOALS: list[tuple[str, str, Any]] = [
    ("step_overhead_ratio", "<= 1.2", lambda v: v <= 1.2),
    ("step_overhead_ratio_10", "<= 1.2", lambda v: v <= 1.2),
    ("dynamodb_writes_per_inline_step", "== 1.0", lambda v: v == 1.0),
    ("sqs_requests_per_inline_step", "== 0", lambda v: v == 0),
    ("dynamodb_reads_per_inline_step", "== 0", lambda v: v == 0),
    ("gate_reads_per_step", "<= 0.1", lambda v: v <= 0.1),
    ("dynamodb_writes_per_step", "", None),
    ("dynamodb_reads_per_step", "", None),
    ("sqs_requests_per_step", "", None),
    ("scheduler_requests_per_step", "", None),
    ("cost_per_million_steps_usd", "<= 0.90", lambda v: v <= 0.90),
    ("cost_per_million_steps_1kb_usd", "<= 0.90", lambda v: v <= 0.90),
    ("cost_per_million_events_usd", "", None),
    ("resume_ratio_10", "", None),
    ("resume_ratio_100", "", None),
    ("resume_ratio_1000", "<= 1.5", lambda v: v <= 1.5),
    ("resume_cpu_ratio_10000", "", None),
    ("resume_bytes_per_step", "", None),
    ("wait_match_requests_flat", "true", lambda v: v is True),
    ("hol_delay_s", "< 0.5", lambda v: v < 0.5),
    ("scale_model", "no key > 1,000 WCU/s or 3,000 RCU/s", lambda v: v["goal_met"] is True),
    ("cold_start_ratio", "<= 1.3", lambda v: v <= 1.3),
    ("dbos_ratio", "< 0.9", lambda v: v < 0.9),
    ("throttle_max_starts_per_period", "<= 10", lambda v: v <= 10),
    ("throttle_min_starts_per_backlogged_period", "== 10", lambda v: v == 10),
    ("dbos_ratio_tmpfs", "< 0.9", lambda v: v < 0.9),
]


def run(
    sizes: Sizes, *, with_dbos: bool = True, with_flow: bool = True, progress: Any = None
) -> dict[str, Any]:
    """Measure every figure at `sizes` (the flow-control ones unless `with_flow` is
    False); returns the flat JSON object."""

    def say(text: str) -> None:
        if progress is not None:
            progress(text)

    started = time.perf_counter()
    result: dict[str, Any] = {}
    peers: dict[str, Any] = {}
    if with_dbos:
        disk = dbos_peer()
        if disk is not None:
            peers["disk"] = disk
            peers["tmpfs"] = dbos_peer(TMPFS)
    try:
        say("step overhead" + (" and DBOS (disk, tmpfs)" if peers else ""))
        overhead = figures.step_overhead(
            steps=sizes.steps, trials=sizes.overhead_trials, dbos=peers
        )
        say(f"step overhead at {sizes.few_steps} steps per invocation")
        overhead_few = figures.step_overhead(
            steps=sizes.few_steps, trials=sizes.overhead_trials, dbos=peers
        )
    finally:
        for peer in peers.values():
            peer.close()
    result["step_overhead_ratio"] = overhead["step_overhead_ratio"]
    result["step_overhead_ratio_10"] = overhead_few["step_overhead_ratio"]
    result["dbos_ratio"] = overhead.get("dbos_ratio_disk")
    result["dbos_ratio_tmpfs"] = overhead.get("dbos_ratio_tmpfs")
    result["step_overhead"] = overhead
    result["step_overhead_10"] = overhead_few
    if peers:
        result["dbos_filesystems"] = {
            label: f"{peer.directory} ({filesystem_of(peer.directory)})"
            for label, peer in peers.items()
        }
    else:
        result["dbos_note"] = (
            "DBOS is not installed (pip install -e '.[bench]'); dbos_ratio is null"
            if with_dbos
            else "DBOS skipped"
        )

    say("requests over the workflow mix")
    mix = figures.request_mix(inline=sizes.mix_inline)
    for key in (
        "dynamodb_writes_per_step",
        "dynamodb_reads_per_step",
        "sqs_requests_per_step",
        "scheduler_requests_per_step",
        "dynamodb_writes_per_inline_step",
        "dynamodb_reads_per_inline_step",
        "sqs_requests_per_inline_step",
    ):
        result[key] = mix[key]
    result["requests"] = mix

    say("the step gate")
    gate = figures.step_gate(steps=sizes.gate_steps)
    result["gate_reads_per_step"] = gate["gate_reads_per_step"]
    result["step_gate"] = gate

    say("cost model")
    cost = figures.cost(segments=sizes.cost_segments)
    result["cost_per_million_steps_usd"] = cost["cost_per_million_steps_usd"]
    result["cost_per_million_steps_1kb_usd"] = cost["cost_per_million_steps_1kb_usd"]
    result["cost"] = cost

    say("the cost of an event")
    events = scale.event_cost()
    result["cost_per_million_events_usd"] = {
        "unwanted": events["unwanted"],
        "resolves_wait": events["resolves_wait"],
    }
    result["event_cost"] = events["detail"]

    say(f"resume CPU at {sizes.resume_cpu_steps:,} steps (played-back responses)")
    cpu = scale.resume_cpu(steps=sizes.resume_cpu_steps, trials=sizes.resume_cpu_trials)
    result[f"resume_cpu_ratio_{sizes.resume_cpu_steps}"] = cpu["resume_cpu_ratio"]
    result["resume_bytes_per_step"] = cpu["resume_bytes_per_step"]
    result["resume_cpu"] = cpu

    say("head-of-line delay")
    hol = scale.hol_delay(step_seconds=sizes.hol_step_s, trials=sizes.hol_trials)
    result["hol_delay_s"] = hol["hol_delay_s"]
    result["hol"] = hol

    say("the busiest partition keys")
    result["scale_model"] = scale.scale_model(samples=sizes.scale_samples)

    say("resume")
    resume = figures.resume(sizes=sizes.resume_sizes, trials=sizes.resume_trials)
    for size, entry in resume.items():
        result[f"resume_ratio_{size}"] = entry["ratio"]
    result["resume"] = resume

    say("waits at scale")
    waits = figures.wait_match(sizes=sizes.wait_sizes, events=sizes.wait_events)
    result["wait_match_requests_flat"] = waits["wait_match_requests_flat"]
    result["wait_match"] = waits["by_waiting_runs"]

    say("cold start")
    cold = figures.cold_start(trials=sizes.cold_trials)
    result["cold_start_ratio"] = cold["cold_start_ratio"]
    result["cold_start"] = cold

    if with_flow:
        result.update(flow_figures(sizes, say))

    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    result["wall_seconds"] = time.perf_counter() - started
    return result


def flow_figures(sizes: Sizes, say: Any = print) -> dict[str, Any]:
    """The flow-control figures (bench/flow.py)."""
    result: dict[str, Any] = {}
    say("flow control: cost per run start")
    starts = flow.start_cost(starts=sizes.flow_starts)
    result["flow_start_cost"] = starts

    say("flow control: throttle accuracy")
    throttle = flow.throttle_accuracy(minutes=sizes.throttle_minutes)
    result["throttle_max_starts_per_period"] = throttle["max_starts_per_period"]
    result["throttle_min_starts_per_backlogged_period"] = throttle[
        "min_starts_per_backlogged_period"
    ]
    result["throttle"] = throttle
    return result


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        if "goal_met" in value:
            return "met" if value["goal_met"] else "not met"
        return " / ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    overhead = result["step_overhead"]
    cost = result["cost"]
    notes = {
        "step_overhead_ratio": f"{overhead['engine_ms_per_step']:.3f} ms vs bare put "
        f"{overhead['bare_put_ms']:.3f} ms",
        "dbos_ratio": (
            f"DBOS {overhead['dbos_ms_per_step']:.3f} ms/step (SQLite on disk)"
            if "dbos_ms_per_step" in overhead
            else result.get("dbos_note", "")
        ),
        "cost_per_million_steps_usd": f"{cost['steps_per_invocation']} steps/invocation, "
        f"{cost['lambda_memory_mb']} MB, {cost['engine_ms_per_invocation']:.1f} ms/invocation",
        "cold_start_ratio": f"first invocation {result['cold_start']['engine_first_invocation_ms']:.0f}"
        f" ms vs boto3+client+PutItem {result['cold_start']['boto3_put_ms']:.0f} ms",
        "step_overhead_ratio_10": f"{result['step_overhead_10']['engine_ms_per_step']:.3f} ms vs "
        f"bare put {result['step_overhead_10']['bare_put_ms']:.3f} ms",
        "dbos_ratio_tmpfs": (
            f"DBOS {overhead['dbos_ms_per_step_tmpfs']:.3f} ms/step (SQLite on tmpfs)"
            if "dbos_ms_per_step_tmpfs" in overhead
            else ""
        ),
        "cost_per_million_steps_1kb_usd": f"{cost['output_bytes_1kb']} B JSON outputs; poller: "
        f"{cost['kilobyte']['poller_assumption'].split(':')[0]}",
        "cost_per_million_events_usd": "EventBridge put, deliveries, handlers, poller, Lambda",
        "sqs_requests_per_step": "ours, the poller's and EventBridge's deliveries",
        "hol_delay_s": f"quick runs alone {result['hol']['quick_runs_alone_s']:.2f} s; batch "
        f"{result['hol']['batch_s']:.2f} s",
        "scale_model": "; ".join(
            f"{name}: W {entry['busiest_write_units_per_s']:,.0f}/s R "
            f"{entry['busiest_read_units_per_s']:,.0f}/s"
            for name, entry in result["scale_model"].items()
            if isinstance(entry, dict) and "busiest_write_units_per_s" in entry
        ),
        "wait_match_requests_flat": ", ".join(
            f"{n}: {entry['dynamodb_request_total']} req {entry['ms']:.0f} ms"
            for n, entry in result["wait_match"].items()
        ),
        "dynamodb_writes_per_step": f"over the mix ({result['requests']['steps']} steps)",
        "gate_reads_per_step": f"{result['step_gate']['gate_reads']} GetItem over "
        f"{result['step_gate']['steps']} steps of {result['step_gate']['step_ms']:.0f} ms",
    }
    if "throttle" in result:
        throttle = result["throttle"]
        notes["throttle_max_starts_per_period"] = (
            f'Throttle(limit=10, period="1m"), {throttle["events"]} events over '
            f"{throttle['minutes']} virtual minutes, {throttle['started']} started"
        )
    notes["resume_cpu_ratio"] = (
        f"CPU {result['resume_cpu']['engine_cpu_ms']:.0f} ms vs Query "
        f"{result['resume_cpu']['query_cpu_ms']:.0f} ms, played-back responses"
    )
    notes["resume_bytes_per_step"] = (
        f"tracemalloc peak / steps; bare Query {result['resume_cpu']['query_bytes_per_step']:,.0f}"
    )
    for size, entry in result["resume"].items():
        notes[f"resume_ratio_{size}"] = (
            f"{entry['resume_ms']:.1f} ms vs Query {entry['query_ms']:.1f} ms"
        )
    grid = Table(title="Stepline benchmark (ratios measured side by side; medians)")
    grid.add_column("figure")
    grid.add_column("value", justify="right")
    grid.add_column("goal")
    grid.add_column("ok")
    grid.add_column("detail")
    for key, goal, check in GOALS:
        if key == "resume_cpu_ratio_10000" and key not in result:
            key = next((k for k in result if k.startswith("resume_cpu_ratio_")), key)
        if key.startswith("resume_cpu_ratio_"):
            notes[key] = notes["resume_cpu_ratio"]
        if key not in result:
            continue
        value = result[key]
        ok = "" if check is None or value is None else ("yes" if check(value) else "NO")
        grid.add_row(key, _fmt(value), goal, ok, notes.get(key, ""))
    return grid


def flow_table(result: dict[str, Any]) -> Any:
    """Per run start, by flow control, against none."""
    from rich.table import Table

    grid = Table(title="Flow control: per run start (one-step workflow; keys distinct per event)")
    for column in (
        "control",
        "requests",
        "+requests",
        "WCU",
        "RCU",
        "invocations",
        "$/M starts",
        "+$/M",
    ):
        grid.add_column(column, justify="left" if column == "control" else "right")
    for control, entry in result["flow_start_cost"]["by_control"].items():
        grid.add_row(
            control,
            _fmt(entry["requests"]),
            _fmt(entry["extra_requests"]),
            _fmt(entry["wcu"]),
            _fmt(entry["rcu"]),
            _fmt(entry["invocations"]),
            _fmt(entry["usd_per_million_starts"]),
            _fmt(entry["extra_usd_per_million_starts"]),
        )
    return grid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer trials (2-4 minutes)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--no-dbos", action="store_true", help="skip the DBOS peer")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("stepline").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from rich.console import Console

    console = Console(stderr=args.json, width=150)
    result = run(
        QUICK if args.quick else FULL,
        with_dbos=not args.no_dbos,
        progress=lambda text: console.print(f"[dim]measuring {text}...[/dim]"),
    )
    result["mode"] = "quick" if args.quick else "full"
    console.print(table(result))
    if "flow_start_cost" in result:
        console.print(flow_table(result))
    console.print(f"wall time {result['wall_seconds']:.0f} s on {result['machine']['cpus']} cores")
    if args.json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
