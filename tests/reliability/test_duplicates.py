"""Duplicate and concurrent delivery: every message two or three times, and workers
racing on the same runs, reach the same final states."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.model import Delivery, WorkMessage
from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START
from tests.faults import BOUNDARIES, FaultPlan
from tests.reliability.figures import add, full_size
from tests.reliability.scenarios import SCENARIOS, Scenario, execute
from tests.reliability.test_crash_matrix import baseline, duplicate_steps


@pytest.mark.parametrize("copies", [2, 3])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_message_delivered_several_times_reaches_the_same_final_state(
    scenario: Scenario, copies
):
    expected, expected_effects = baseline(scenario.name)
    state, effects, rt = execute(scenario, deliveries_per_message=copies)
    add("scenarios run")
    add("messages delivered more than once", sum(rt.deliveries.values()) * (copies - 1))
    add("runs checked", len(expected))
    assert state == expected
    assert duplicate_steps(state) == 0
    # Duplicates arrive after the first copy was handled: no step's code runs twice.
    assert effects == expected_effects


def test_workers_racing_on_the_same_runs_record_each_step_once(atomic_aws_requests):
    app = App("race")
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def work(name: str) -> str:
        with lock:
            calls[name] = calls.get(name, 0) + 1
        return name

    @app.workflow("racer", trigger="go")
    def flow(ctx: Context) -> list[str]:
        done = [ctx.step.run(f"a{i}", work, f"{ctx.run_id}/a{i}") for i in range(3)]
        ctx.step.sleep("nap", "1m")
        done += [ctx.step.run(f"b{i}", work, f"{ctx.run_id}/b{i}") for i in range(3)]
        return done

    runs = 12 if not full_size() else 60
    with LocalRuntime(app, start=START) as rt:
        run_ids = [
            rt.services.lifecycle.start_run(app.get("racer"), Event(name="go", id=f"e{i}"))
            for i in range(runs)
        ]
        rt.clients.sqs.purge_queue(QueueUrl=rt.queue_urls["work"])
        barrier = threading.Barrier(4, timeout=30)

        def racer(worker: int) -> None:
            barrier.wait()
            for run_id in run_ids:
                rt.services.runner.handle(
                    WorkMessage(run_id=run_id, reason="start"),
                    Delivery(message_id=f"{run_id}-w{worker}"),
                    lambda: 900.0,
                )

        threads = [threading.Thread(target=racer, args=(worker,)) for worker in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rt.advance(timedelta(minutes=2))
        add("scenarios run")
        add("runs checked", runs)
        for run_id in run_ids:
            run = rt.run(run_id)
            assert run.status == "COMPLETED", (run_id, run.status, run.error)
            steps = rt.history(run_id)
            assert [s.id for s in steps] == ["a0", "a1", "a2", "nap", "b0", "b1", "b2"]
            assert all(s.attempts <= 1 for s in steps)
        # Leases let one racer through per run; the others left it alone.
        assert all(count == 1 for count in calls.values()), calls
        assert len(calls) == runs * 6


@settings(
    max_examples=40 if full_size() else 8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    scenario=st.sampled_from(SCENARIOS),
    boundary=st.sampled_from(sorted(BOUNDARIES)),
    occurrence=st.integers(min_value=1, max_value=4),
    times=st.integers(min_value=1, max_value=3),
    copies=st.sampled_from([1, 2]),
)
def test_repeated_crashes_at_one_point_with_duplicates_still_reach_the_same_state(
    scenario, boundary, occurrence, times, copies
):
    expected, expected_effects = baseline(scenario.name)
    plan = FaultPlan(boundary=boundary, occurrence=occurrence, times=times)
    state, effects, _ = execute(scenario, ports_hook=plan.hook, deliveries_per_message=copies)
    add("scenarios run")
    add("faults injected", plan.fired)
    add("runs checked", len(expected))
    assert state == expected
    for key, count in effects.items():
        assert count <= expected_effects[key] + plan.fired
