"""`step.map`: a function over items as one recorded batch; completion policies.

Each item is a scope of its own (its steps recorded under it) and its result is recorded
once, so a replay calls nothing again. Without completion options it returns the results
as a list and raises the first failure; with one, a `BatchResult`.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest

from infra.local import LocalRuntime
from sdk import (
    App,
    AsyncContext,
    BatchResult,
    Context,
    Event,
    NonRetriableError,
    Retry,
    StepError,
)
from tests.conftest import START
from tests.faults import crash_once, wrap_store


def fail_on(*bad: int):
    def work(item: int) -> int:
        if item in bad:
            raise NonRetriableError(f"item {item} is bad")
        return item * 10

    return work


def test_a_map_returns_results_in_item_order_and_a_replay_calls_nothing_again(effects):
    app = App("t")

    def item(value: int, index: int) -> dict:
        effects.record("item", value)
        doubled = ctx_box["ctx"].step.run("double", lambda: effects.record("double") or value * 2)
        return {"index": index, "doubled": doubled}

    ctx_box: dict[str, Context] = {}

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> list:
        ctx_box["ctx"] = ctx
        results = ctx.step.map("each", [5, 6, 7], item, item_namer=lambda v, i: f"value-{v}")
        ctx.step.sleep("nap", "1h")
        return results

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(hours=2))
        # THEN the results come back in item order, on the first run and after the nap
        assert rt.run(run_id).output == [
            {"index": 0, "doubled": 10},
            {"index": 1, "doubled": 12},
            {"index": 2, "doubled": 14},
        ]
        # AND each item's function ran once: the replay read the items' records
        assert effects["item"] == 3 and effects["double"] == 3
        history = rt.history(run_id)
        assert [(s.id, s.kind, s.depth) for s in history[:3]] == [
            ("each", "map", 0),
            ("value-5", "map_item", 1),
            ("double", "run", 2),
        ]
        assert history[0].detail == "3 items: 3 succeeded (ALL_COMPLETED)"


def test_without_options_the_first_failure_stops_new_items_and_raises_step_error(effects):
    app = App("t")
    work = fail_on(2)

    def item(value: int, index: int) -> int:
        effects.record("started", value)
        return work(value)

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> Any:
        try:
            return ctx.step.map("each", [1, 2, 3, 4], item, max_concurrency=1)
        except StepError as error:
            return {"type": error.error_type, "message": error.error_message}

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        output = rt.run(run_id).output
        # THEN the failure surfaced as StepError with the item's own error type...
        assert output["type"] == "NonRetriableError"
        assert "each[1]" in output["message"] and "item 2 is bad" in output["message"]
        # ...and the items after it were never started
        assert [args[0] for _, args in effects.log] == [1, 2]
        assert (
            rt.history(run_id)[0].detail
            == "4 items: 1 succeeded, 1 failed, 2 not started (FAILURE_TOLERANCE_EXCEEDED)"
        )


def policy_app(effects, items: list[int], bad: tuple[int, ...], **options: Any) -> App:
    app = App("t")
    work = fail_on(*bad)

    def item(value: int, index: int) -> int:
        effects.record("started", value)
        return work(value)

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> dict:
        result = ctx.step.map("each", items, item, **options)
        assert isinstance(result, BatchResult)
        return {
            "reason": result.completion_reason,
            "status": result.status,
            "statuses": [entry.status for entry in result.items],
            "results": result.results(),
            "errors": [error.error_message for error in result.errors()],
            "counts": [result.success_count, result.failure_count, result.total_count],
            "has_failure": result.has_failure,
            "succeeded": [entry.index for entry in result.succeeded()],
            "failed": [entry.name for entry in result.failed()],
        }

    return app


def test_min_successful_ends_the_map_and_items_not_yet_started_never_start(effects):
    app = policy_app(effects, [1, 2, 3, 4, 5], (), min_successful=2, max_concurrency=1)
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        out = rt.run(run_id).output
        assert out["reason"] == "MIN_SUCCESSFUL_REACHED"
        assert out["statuses"] == [
            "SUCCEEDED",
            "SUCCEEDED",
            "NOT_STARTED",
            "NOT_STARTED",
            "NOT_STARTED",
        ]
        assert out["results"] == [10, 20]
        assert effects["started"] == 2


def test_a_map_over_items_where_two_fail_keeps_the_eight_successes(effects):
    # The example: 10 items, 2 fail; the 8 successes are not thrown away.
    app = policy_app(effects, list(range(10)), (3, 7), tolerated_failure_count=2)
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        out = rt.run(run_id).output
        assert out["reason"] == "ALL_COMPLETED"
        assert out["status"] == "FAILED" and out["has_failure"] is True
        assert out["counts"] == [8, 2, 10]
        assert out["results"] == [0, 10, 20, 40, 50, 60, 80, 90]
        assert out["failed"] == ["each[3]", "each[7]"]
        assert out["errors"] == ["item 3 is bad", "item 7 is bad"]


def test_exceeding_the_tolerated_failures_ends_the_map(effects):
    app = policy_app(
        effects, [1, 2, 3, 4, 5, 6], (1, 2), tolerated_failure_count=1, max_concurrency=1
    )
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        out = rt.run(run_id).output
        assert out["reason"] == "FAILURE_TOLERANCE_EXCEEDED"
        assert out["statuses"][:2] == ["FAILED", "FAILED"]
        assert set(out["statuses"][2:]) == {"NOT_STARTED"}
        assert effects["started"] == 2


def test_a_tolerated_failure_percentage(effects):
    app = policy_app(
        effects, [1, 2, 3, 4], (1, 2, 3), tolerated_failure_percentage=50, max_concurrency=1
    )
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        out = rt.run(run_id).output
        # 3 of 4 is 75 % > 50 %: decided at the third failure, the fourth never starts
        assert out["reason"] == "FAILURE_TOLERANCE_EXCEEDED"
        assert out["statuses"] == ["FAILED", "FAILED", "FAILED", "NOT_STARTED"]


def test_min_successful_alone_tolerates_the_failures_it_can_absorb(effects):
    app = policy_app(effects, [1, 2, 3, 4], (1,), min_successful=3, max_concurrency=1)
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        out = rt.run(run_id).output
        assert out["reason"] == "ALL_COMPLETED"
        assert out["counts"] == [3, 1, 4]


def test_throw_if_error_raises_the_first_failure_as_step_error():
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> str:
        result = ctx.step.map("each", [1, 2], lambda v, i: fail_on(2)(v), tolerated_failure_count=5)
        try:
            result.throw_if_error()
        except StepError as error:
            return f"{error.step_id}: {error.error_type}"
        return "no error"

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == "each[1]: NonRetriableError"


def test_once_decided_an_item_still_in_flight_stops_and_its_waits_are_withdrawn(effects):
    # GIVEN a map that needs one success, where the second item would sleep an hour
    app = App("t")

    def item(value: str, index: int) -> str:
        ctx = box["ctx"]
        if value == "slow":
            ctx.step.sleep("later", "1h")
            ctx.step.run("after-sleep", lambda: effects.record("after-sleep"))
        return value

    box: dict[str, Context] = {}

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> list:
        box["ctx"] = ctx
        result = ctx.step.map("each", ["slow", "fast"], item, min_successful=1)
        return [entry.status for entry in result.items]

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        # THEN the run did not wait for the sleeping item: it completed at once
        assert rt.run(run_id).status == "COMPLETED"
        assert rt.run(run_id).output == ["STARTED", "SUCCEEDED"]
        rt.advance(timedelta(hours=2))
        assert effects["after-sleep"] == 0


def test_max_concurrency_bounds_the_items_in_flight_and_zero_is_a_definition_error():
    app = App("t")
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def item(value: int, index: int) -> int:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            return box["ctx"].step.run("work", lambda: value)
        finally:
            with lock:
                state["now"] -= 1

    box: dict[str, Context] = {}

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> int:
        box["ctx"] = ctx
        return len(ctx.step.map("each", range(12), item, max_concurrency=3))

    @app.workflow("zero", trigger="zero")
    def zero(ctx: Context) -> list:
        return ctx.step.map("each", [1], lambda v, i: v, max_concurrency=0)

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == 12
        assert 1 <= state["most"] <= 3
        [bad] = rt.send(Event(name="zero"))
        assert rt.run(bad).error.type == "WorkflowDefinitionError"
        assert "max_concurrency=0" in rt.run(bad).error.message


def test_item_serdes_stores_each_result_as_its_text():
    class Csv:
        def serialize(self, value: Any) -> str:
            return ",".join(map(str, value))

        def deserialize(self, text: str) -> Any:
            return [int(part) for part in text.split(",")]

    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> list:
        pairs = ctx.step.map("pairs", [1, 2], lambda v, i: (v, v * v), item_serdes=Csv())
        ctx.step.sleep("nap", "1m")
        return pairs

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=2))
        assert rt.run(run_id).output == [[1, 1], [2, 4]]
        assert [s.output for s in rt.history(run_id)[1:3]] == ["1,1", "2,4"]


def test_an_empty_map_returns_an_empty_list_or_an_empty_batch_result():
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> list:
        empty = ctx.step.map("none", [], lambda v, i: v)
        result = ctx.step.map("none-either", [], lambda v, i: v, tolerated_failure_count=1)
        return [empty, result.completion_reason, result.total_count]

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == [[], "ALL_COMPLETED", 0]


def crash_app(effects) -> App:
    app = App("t")

    def item(value: int, index: int) -> int:
        effects.record("item")
        return box["ctx"].step.run("charge", lambda: effects.record(f"charge-{value}") or value)

    box: dict[str, Context] = {}

    @app.workflow("w", trigger="go", retries=Retry(max_attempts=1))
    def flow(ctx: Context) -> list:
        box["ctx"] = ctx
        return ctx.step.map("each", range(6), item, max_concurrency=2)

    return app


@pytest.mark.parametrize("kind", ["map_item", "run"])
def test_a_crash_in_the_middle_of_a_map_resumes_it_without_running_a_step_twice(effects, kind):
    # GIVEN a crash right after the third record of this kind is written
    seen = {"n": 0}

    def third(name, args, kwargs) -> bool:
        if name == "put_step" and args[1].kind == kind and args[1].status == "COMPLETED":
            seen["n"] += 1
            return seen["n"] == 3
        return False

    crash = crash_once(third)
    with LocalRuntime(crash_app(effects), start=START, ports_hook=wrap_store(after=crash)) as rt:
        # WHEN the message comes back after the crash
        [run_id] = rt.send(Event(name="go"))
        # THEN the map completed with every item's result, and each charge ran once
        assert crash.state["fired"]
        assert rt.run(run_id).output == [0, 1, 2, 3, 4, 5]
        assert all(effects[f"charge-{value}"] == 1 for value in range(6))


def test_duplicate_deliveries_run_each_item_once(effects):
    with LocalRuntime(crash_app(effects), start=START, deliveries_per_message=2) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == [0, 1, 2, 3, 4, 5]
        assert all(effects[f"charge-{value}"] == 1 for value in range(6))


def test_a_changed_item_list_or_map_id_is_non_deterministic_naming_the_map():
    app = App("t")
    shape = {"items": [1, 2], "id": "each"}

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> list:
        def item(value: int, index: int) -> int:
            ctx.step.sleep("wait", "1h")
            return value

        return ctx.step.map(shape["id"], shape["items"], item)

    with LocalRuntime(app, start=START) as rt:
        # WHEN a run resumes with another item list
        [first] = rt.send(Event(name="go"))
        shape["items"] = [1, 2, 3]
        rt.advance(timedelta(minutes=90))
        # THEN it fails, naming the map and both lists' sizes
        first_run = rt.run(first)
        assert first_run.error.type == "NonDeterminismError"
        assert "map 'each' of 2 items" in first_run.error.message
        assert "map 'each' of 3 items" in first_run.error.message
        # AND WHEN a run resumes with the map renamed, it fails naming both ids
        shape["items"] = [1, 2]
        [second] = rt.send(Event(name="go"))
        shape["id"] = "renamed"
        rt.advance(timedelta(minutes=90))
        message = rt.run(second).error.message
        assert "'each' (map)" in message and "'renamed' (map)" in message


def test_items_not_started_for_lack_of_time_start_in_a_fresh_invocation(effects):
    app = App("t")

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> list:
        return ctx.step.map("each", range(3), lambda v, i: effects.record(f"item-{v}") or v)

    with LocalRuntime(
        app,
        start=START,
        lambda_timeout=timedelta(minutes=1),
        settings={"suspend_margin": timedelta(minutes=2)},
    ) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == [0, 1, 2]
        assert all(effects[f"item-{v}"] == 1 for v in range(3))
        assert rt.deliveries["work"] >= 2


def test_an_async_map_awaits_async_items_with_a_concurrency_limit(effects):
    app = App("t")

    @app.workflow("w", trigger="go")
    async def flow(ctx: AsyncContext) -> Any:
        async def item(value: int, index: int) -> int:
            return await ctx.step.run("sq", lambda: value * value)

        squares = await ctx.step.map("sq", range(5), item, max_concurrency=2)
        # One at a time, so the success comes first and decides: item 1 never starts.
        bad = await ctx.step.map(
            "bad", [2, 1], lambda v, i: fail_on(1)(v), min_successful=1, max_concurrency=1
        )
        statuses = [str(item.status) for item in bad.items]
        return [squares, bad.completion_reason, json.loads(json.dumps(bad.results())), statuses]

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == [
            [0, 1, 4, 9, 16],
            "MIN_SUCCESSFUL_REACHED",
            [20],
            ["SUCCEEDED", "NOT_STARTED"],
        ]
