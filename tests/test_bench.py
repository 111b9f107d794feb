"""The benchmark runs end to end at tiny sizes and reports every key with the right type.

Timings are not asserted (they belong to `python -m bench`); request counts are, where
they are exact.
"""

from __future__ import annotations

import json

import pytest

from bench.__main__ import SMOKE, flow_figures, flow_table, run, table
from bench.template import engine_memory_mb, queues_delivered
from sdk import App

FLOAT_KEYS = (
    "step_overhead_ratio",
    "step_overhead_ratio_10",
    "cost_per_million_steps_1kb_usd",
    "resume_cpu_ratio_20",
    "resume_bytes_per_step",
    "hol_delay_s",
    "dynamodb_writes_per_step",
    "dynamodb_reads_per_step",
    "sqs_requests_per_step",
    "scheduler_requests_per_step",
    "dynamodb_writes_per_inline_step",
    "dynamodb_reads_per_inline_step",
    "gate_reads_per_step",
    "cost_per_million_steps_usd",
    "resume_ratio_3",
    "cold_start_ratio",
)


@pytest.mark.timeout(300)  # about a minute on a busy 2-core machine: every figure, tiny
def test_the_bench_reports_every_figure_at_tiny_sizes():
    result = run(SMOKE, with_dbos=False, with_flow=False)
    for key in FLOAT_KEYS:
        assert isinstance(result[key], float), key
        assert result[key] >= 0, key
    assert isinstance(result["wait_match_requests_flat"], bool)
    assert result["dbos_ratio"] is None
    assert result["dbos_ratio_tmpfs"] is None
    events = result["cost_per_million_events_usd"]
    assert set(events) == {"unwanted", "resolves_wait"}
    assert 0 < events["unwanted"] < events["resolves_wait"]
    # The figures read the deployment: the template's engine memory, the rules' queues.
    assert result["cost"]["lambda_memory_mb"] == engine_memory_mb()
    detail = result["event_cost"]
    # An event no workflow uses is not delivered: what is left is its PutEvents.
    assert detail["unwanted"]["eventbridge_deliveries_to_sqs"] == 0
    assert detail["unwanted"]["invocations"] == {}
    assert events["unwanted"] == pytest.approx(1.0)
    assert detail["resolves_wait"]["eventbridge_deliveries_to_sqs"] == 1
    scale = result["scale_model"]
    assert isinstance(scale["goal_met"], bool)
    for name in ("events_resolving_waits_10000_per_s", "run_starts_10000_per_s"):
        assert scale[name]["busiest_write_units_per_s"] > 0, name
        assert isinstance(scale[name]["busiest_write_key"], str)
    # Exact counts: one write per extra inline step and no SQS between suspensions.
    assert result["dynamodb_writes_per_inline_step"] == 1.0
    assert result["sqs_requests_per_inline_step"] == 0.0
    assert result["wait_match_requests_flat"] is True
    # One JSON object, and a table that renders.
    assert json.loads(json.dumps(result, default=str))["cold_start"]["boto3_put_ms"] > 0
    assert table(result).row_count > 0


@pytest.mark.timeout(300)  # ten controls and two virtual minutes of throttle on moto
def test_the_flow_control_figures_at_tiny_sizes():
    result = flow_figures(SMOKE, say=lambda text: None)
    # Every control started every event's run, and the throttle held.
    by_control = result["flow_start_cost"]["by_control"]
    assert by_control["none"]["extra_requests"] == 0
    assert all(entry["requests"] > 0 for entry in by_control.values())
    assert result["throttle_max_starts_per_period"] <= 10
    assert flow_table(result).row_count == len(by_control)


def test_the_capacity_model_counts_kilobytes_transactions_and_indexes():
    from bench.harness import RequestMeter, item_size

    meter = RequestMeter()
    small = {"pk": {"S": "RUN#a"}, "sk": {"S": "STEP#00000"}, "r": {"S": "x" * 100}}
    large = {"pk": {"S": "RUN#a"}, "sk": {"S": "STEP#00001"}, "r": {"S": "x" * 1500}}
    indexed = {**small, "sk": {"S": "RUN"}, "g2pk": {"S": "RUNS#2026-12#3"}, "g2sk": {"S": "a"}}
    assert item_size(small) == len("pk") + 5 + len("sk") + 10 + len("r") + 100
    meter._write(small, False, True)
    assert meter.wcu == 1
    meter._write(large, False, True)
    assert meter.wcu == 3  # 1.5 KB rounds up to 2 units
    meter._write(indexed, False, True)
    assert meter.wcu == 5  # the item and its keys in the runs index
    meter._write(small, False, True, factor=2)
    assert meter.wcu == 7  # a transaction costs twice


def test_the_deployment_reader_finds_the_engine_memory_and_the_queue_an_event_reaches():
    app = App("reader")
    app.workflow("w", trigger="a/used")(lambda ctx: None)
    assert engine_memory_mb() >= 128
    assert queues_delivered(app, "a/used") == ["EventsQueue"]
    assert queues_delivered(app, "stepline/callback.completed") == ["EventsQueue"]
    assert queues_delivered(app, "a/unused") == []


def test_partition_keys_are_normalized_to_their_name_patterns():
    from bench.scale import normalize

    run = "flow-0123456789abcdef0123"
    assert normalize(f"RUN#{run}", {run}) == "RUN#<run>"
    assert normalize("RUNS#2026-03", set()) == "RUNS#<date>"
    assert normalize('WAIT#e#data.orderId#"order-7"', set()) == 'WAIT#e#data.orderId#"<value>"'
