"""A map of 10,000 items: within the history limits, and within a 512 MB Lambda's memory.

Item positions are branches of the map's position (up to 100,000 per batch, like steps
per scope). A resume loads the whole history with one paginated Query, and replays a
finished map from its summary and its items' records without calling any item again.

The 10,000 items run on the engine over the in-memory fakes, whose load here parses
every record from its stored text as the DynamoDB adapter does; that is where memory is
measured. On moto the same map runs with fewer, larger items, enough for the history to
span several 1 MB Query pages: moto's response serialiser costs milliseconds per item
returned, so 10,000 items there take minutes of moto, not of Stepline.
"""

from __future__ import annotations

import base64
import random
import tracemalloc
from dataclasses import replace
from datetime import timedelta
from typing import Any

from engine.ports import LoadedRun, Ports
from engine.testing import FakeCluster
from infra.dynamo_table import decode_step, encode_step
from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START

ITEMS = 10_000
# A 512 MB Lambda runs Python, boto3 and the engine in about 100 MB; the rest is for runs.
MEMORY_BUDGET_BYTES = 200_000_000


def big_map_app(effects, *, inner_step: bool, items: int = ITEMS, pad: int = 0) -> App:
    app = App("t")

    def item(value: int, index: int) -> Any:
        effects.record("item")
        if inner_step:
            return box["ctx"].step.run("square", lambda: value * value)
        if pad:
            # Random text: records are stored compressed, and a repeated character would
            # shrink to nothing (the history must span Query pages).
            noise = random.Random(value).randbytes(pad * 3 // 4)
            return {"square": value * value, "pad": base64.b64encode(noise).decode()}
        return value * value

    box: dict[str, Context] = {}

    @app.workflow("big", trigger="go")
    def flow(ctx: Context) -> int:
        box["ctx"] = ctx
        squares = ctx.step.map("squares", range(items), item)
        ctx.step.sleep("nap", "1m")
        return sum(square["square"] if pad else square for square in squares)

    return app


class Parsing:
    """The fake store, loading records from their stored text as DynamoDB's adapter does."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def load(self, run_id: str) -> LoadedRun | None:
        loaded = self._inner.load(run_id)
        if loaded is not None:
            loaded.steps = {
                key: decode_step(encode_step(record)).model_copy(update={"key": key})
                for key, record in loaded.steps.items()
            }
        return loaded


def parsing(ports: Ports) -> Ports:
    store = Parsing(ports.store)
    return replace(ports, store=store, index=store, events=store)


def test_the_engine_replays_a_10000_item_map_with_inner_steps_in_little_memory(effects):
    # GIVEN a run that mapped 10,000 items, each with a step of its own (20,002 records)
    cluster = FakeCluster(big_map_app(effects, inner_step=True), start=START, ports_hook=parsing)
    [run_id] = cluster.send(Event(name="go"))
    assert effects["item"] == ITEMS
    assert len(cluster.store.steps[run_id]) == 2 * ITEMS + 2  # map, items, their steps, nap
    # WHEN it resumes after its sleep
    tracemalloc.start()
    try:
        cluster.advance(timedelta(minutes=2))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # THEN it completed without calling any item again, within the memory budget
    run = cluster.store.get_run(run_id)
    assert run is not None and run.status == "COMPLETED"
    assert run.output == sum(value * value for value in range(ITEMS))
    assert effects["item"] == ITEMS
    assert peak < MEMORY_BUDGET_BYTES, f"peak {peak / 1e6:.0f} MB"


# Item records of about 900 bytes: 1,500 of them span two 1 MB Query pages.
MOTO_ITEMS = 1_500
MOTO_PAD = 1_200


def test_a_map_whose_history_spans_query_pages_resumes_with_one_paginated_query_on_moto(
    effects, requests_of
):
    app = big_map_app(effects, inner_step=False, items=MOTO_ITEMS, pad=MOTO_PAD)
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).status == "SLEEPING"
        assert effects["item"] == MOTO_ITEMS
        counter = requests_of(rt)
        rt.advance(timedelta(minutes=2))
        counter.enabled = False
        assert rt.run(run_id).output == sum(value * value for value in range(MOTO_ITEMS))
        # The resume called no item again and read the history with one Query, in pages
        assert effects["item"] == MOTO_ITEMS
        assert counter.counts[("dynamodb", "GetItem")] == 0
        assert counter.counts[("dynamodb", "Query")] == 2
        # Claim and the final write: nothing of the map is written again
        assert counter.dynamodb_writes == 2
