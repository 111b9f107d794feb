"""The pure engine on in-memory fakes: fast unit and property tests of replay.

Property: any workflow shape (steps, flaky steps, sleeps, parallel groups), with a crash
injected at any one write of the store, reaches the same final state as without the
crash; no step is recorded twice, and each step's code runs at most once more than its
recorded attempts.
"""

from __future__ import annotations

import collections
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.settings import EngineSettings
from engine.testing import FakeCluster
from sdk import App, Context, Event, Retry, StepError
from tests.conftest import START
from tests.faults import Intercept, SimulatedCrash

# A shape is a list of operations:
#   ("run", fails)        a step failing `fails` times before succeeding
#   ("sleep", seconds)
#   ("parallel", [shape, shape])
leaf = st.one_of(
    st.tuples(st.just("run"), st.integers(min_value=0, max_value=3)),
    st.tuples(st.just("sleep"), st.sampled_from([1, 30, 600, 3600, 86400 * 3])),
)
shapes = st.recursive(
    st.lists(leaf, min_size=1, max_size=5),
    lambda inner: st.lists(
        st.one_of(leaf, st.tuples(st.just("parallel"), st.lists(inner, min_size=2, max_size=3))),
        min_size=1,
        max_size=4,
    ),
    max_leaves=12,
)


def build(shape: list, effects: collections.Counter) -> App:
    app = App("prop")

    def execute(ctx: Context, operations: list, path: str) -> list[Any]:
        results: list[Any] = []
        for index, operation in enumerate(operations):
            name = f"{path}{index}"
            if operation[0] == "run":
                fails = operation[1]

                def body(name: str = name, fails: int = fails, ctx: Context = ctx) -> str:
                    effects[name] += 1
                    # Fail by recorded attempt, not by call count: a crash may re-run an
                    # attempt's code, and the outcome must not depend on that.
                    if ctx.attempt < fails:
                        raise ConnectionError(f"{name} attempt {ctx.attempt}")
                    return f"{name}-ok"

                try:
                    results.append(ctx.step.run(name, body))
                except StepError as error:
                    results.append(f"gave-up:{error.error_type}")
            elif operation[0] == "sleep":
                ctx.step.sleep(name, timedelta(seconds=operation[1]))
                results.append("slept")
            else:
                branches = [
                    (lambda sub=sub, b=b, name=name: execute(ctx, sub, f"{name}.{b}."))
                    for b, sub in enumerate(operation[1])
                ]
                results.append(ctx.step.parallel(*branches))
        return results

    @app.workflow("shape", trigger="go", retries=Retry(max_attempts=3, initial_delay="1s"))
    def flow(ctx: Context) -> list[Any]:
        return execute(ctx, shape, "s")

    return app


def run_shape(shape: list, crash_at: int | None) -> tuple[Any, collections.Counter, FakeCluster]:
    effects: collections.Counter = collections.Counter()
    calls = {"n": 0}

    def maybe_crash(name: str, args: tuple, kwargs: dict) -> None:
        if name in ("put_step", "write_run", "create_run", "poke"):
            calls["n"] += 1
            if calls["n"] == crash_at:
                raise SimulatedCrash(f"crash at write {crash_at} ({name})")

    def hook(ports):
        from dataclasses import replace

        store = Intercept(ports.store, before=maybe_crash)
        return replace(ports, store=store, index=store, events=store)

    cluster = FakeCluster(build(shape, effects), start=START, ports_hook=hook)
    [run_id] = cluster.send(Event(name="go", id="e1"))
    cluster.advance(timedelta(days=30))
    run = cluster.store.get_run(run_id)
    steps = cluster.store.steps.get(run_id, {})
    final = (
        run.status.value,
        run.output,
        sorted(
            (key, record.id, record.status.value, record.output) for key, record in steps.items()
        ),
    )
    return final, effects, cluster


@settings(
    max_examples=int(__import__("os").environ.get("STEPLINE_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(shape=shapes, crash_at=st.integers(min_value=1, max_value=40))
def test_a_crash_at_any_write_reaches_the_same_final_state(shape, crash_at):
    expected, _, _ = run_shape(shape, None)
    assert expected[0] == "COMPLETED"
    actual, effects, cluster = run_shape(shape, crash_at)
    assert actual == expected
    # Each step's code ran at most once more than its recorded attempts (the crash window).
    run_id = next(iter(cluster.store.runs))
    for record in cluster.store.steps[run_id].values():
        if record.kind.value == "run":
            assert effects[record.id] <= record.attempts + 1


def test_parallel_positions_are_nested_under_the_group_position():
    final, _, _ = run_shape(
        [("run", 0), ("parallel", [[("run", 0)], [("run", 0), ("run", 0)]])], None
    )
    keys = [key for key, *_ in final[2]]
    assert keys == ["00000", "00001.00000.00000", "00001.00001.00000", "00001.00001.00001"]


def test_replacing_a_parallel_group_with_a_step_is_non_deterministic():
    app = App("t")
    version = {"parallel": True}

    @app.workflow("shifty", trigger="go")
    def flow(ctx: Context) -> None:
        if version["parallel"]:
            ctx.step.parallel(
                lambda: ctx.step.run("a", lambda: 1), lambda: ctx.step.run("b", lambda: 2)
            )
        else:
            ctx.step.run("a", lambda: 1)
        ctx.step.sleep("nap", "1h")

    cluster = FakeCluster(app, start=START)
    [run_id] = cluster.send(Event(name="go"))
    version["parallel"] = False
    cluster.advance(timedelta(hours=2))
    run = cluster.store.get_run(run_id)
    assert run.status.value == "FAILED"
    assert "a parallel group" in run.error.message


def test_a_run_that_keeps_changing_during_an_invocation_is_redelivered_not_stranded():
    app = App("t")
    pokes = {"left": 5}
    cluster: FakeCluster

    @app.workflow("busy", trigger="go")
    def flow(ctx: Context) -> str:
        # Something outside keeps touching the run while each replay is under way (a
        # burst of events, say): every write of the run item then conflicts.
        if pokes["left"] > 0:
            pokes["left"] -= 1
            cluster.store.poke(ctx.run_id)
        return ctx.step.run("work", lambda: "ok")

    cluster = FakeCluster(app, start=START, settings=EngineSettings(max_reloads=2))
    [run_id] = cluster.send(Event(name="go"))
    run = cluster.store.get_run(run_id)
    # Each invocation replayed twice, then gave its message back instead of acking it;
    # the redelivery took the lease over, and the run finished once the changes stopped.
    assert run.status.value == "COMPLETED" and run.output == "ok"
    assert pokes["left"] == 0
