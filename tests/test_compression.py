"""Step records over about 1 KB are stored compressed: a step with a ~1 KB JSON output
costs one DynamoDB write unit, and compressed records replay, retry and resolve like any."""

from __future__ import annotations

from datetime import timedelta

from bench.harness import item_size
from engine.ids import StepKey
from infra.dynamo_table import run_pk, step_sk
from infra.local import LocalRuntime
from sdk import App, Context, Event, Retry
from tests.conftest import START


def _order(index: int) -> dict:
    # About 1 KB of JSON, shaped like a typical API response.
    return {
        "id": f"order-{index}",
        "customer": {"id": "c-42", "name": "Ada Lovelace", "email": "ada@example.com"},
        "lines": [
            {"sku": f"SKU-{n:04d}", "title": "Analytical engine part", "qty": n, "price": 12.5}
            for n in range(12)
        ],
        "status": "paid",
        "notes": "deliver to the back door, ring twice",
    }


def _item(rt: LocalRuntime, run_id: str, position: int) -> dict:
    return rt.clients.dynamodb.get_item(
        TableName=rt.settings.table,
        Key={"pk": run_pk(run_id), "sk": step_sk(StepKey((position,)))},
        ConsistentRead=True,
    )["Item"]


def test_a_step_with_a_1_kb_output_fits_one_write_unit_and_replays(effects):
    app = App("t")

    @app.workflow("orders", trigger="go")
    def flow(ctx: Context) -> int:
        order = ctx.step.run("fetch", lambda: effects.record("fetch") or _order(1))
        ctx.step.sleep("nap", "1m")
        return len(order["lines"])

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        # THEN the output came back whole after the replay, the step ran once...
        assert rt.run(run_id).output == 12
        assert effects["fetch"] == 1
        [fetch, _] = rt.history(run_id)
        assert fetch.output == _order(1)
        # ...and its item, compressed, is under a kilobyte: one write unit
        item = _item(rt, run_id, 0)
        assert "z" in item and "r" not in item
        assert item_size(item) <= 1024


def test_a_retried_step_with_large_errors_is_compare_and_set_while_compressed():
    app = App("t")
    attempts = {"n": 0}

    def flaky() -> str:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise RuntimeError("upstream said: " + "x" * 3000)
        return "ok"

    @app.workflow("flaky", trigger="go", retries=Retry(max_attempts=3, initial_delay="1s"))
    def flow(ctx: Context) -> str:
        return ctx.step.run("call", flaky)

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert "z" in _item(rt, run_id, 0)  # the RETRYING record, compressed
        rt.advance(timedelta(minutes=1))
        run = rt.run(run_id)
        assert (run.status, run.output) == ("COMPLETED", "ok")
        [call] = rt.history(run_id)
        assert call.attempts == 3 and len(call.failures) == 2


def test_a_compressed_wait_is_resolved_by_its_event():
    app = App("t")

    @app.workflow("approval", trigger="order/placed")
    def flow(ctx: Context) -> str:
        got = ctx.step.wait_for_event("ok", event="order/approved", match="data.id", timeout="1d")
        return got.data["by"] if got else "timed out"

    with LocalRuntime(app, start=START) as rt:
        # A long match value makes the indexed wait record compress.
        key = "k" * 1500
        [run_id] = rt.send(Event(name="order/placed", data={"id": key}))
        assert "z" in _item(rt, run_id, 0)
        rt.send(Event(name="order/approved", data={"id": key, "by": "boss"}))
        assert rt.run(run_id).output == "boss"
