"""Crash injection at every I/O boundary, for every example scenario.

For each (scenario, boundary) the process "dies" at that boundary (SimulatedCrash: no
code after it runs), SQS redelivers, and the final state must equal the fault-free
run's: same runs, statuses, outputs, steps and attempts; no run lost; no step recorded
twice; and the outside world sees each side effect at most once more per crash (the
window between running a step and recording it).
"""

from __future__ import annotations

import functools
from collections import Counter

import pytest

from tests.faults import BOUNDARIES, FaultPlan
from tests.reliability.figures import add, full_size
from tests.reliability.scenarios import SCENARIOS, Scenario, execute


@functools.cache
def baseline(name: str):
    scenario = next(s for s in SCENARIOS if s.name == name)
    state, effects, _ = execute(scenario)
    return state, effects


def duplicate_steps(state) -> int:
    counts = Counter((run_id, step[1]) for run_id, run in state.items() for step in run["steps"])
    return sum(count - 1 for count in counts.values() if count > 1)


@pytest.mark.parametrize("boundary", sorted(BOUNDARIES))
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_a_crash_at_any_boundary_reaches_the_fault_free_final_state(scenario: Scenario, boundary):
    expected, expected_effects = baseline(scenario.name)
    assert all(run["status"] in ("COMPLETED", "CANCELLED") for run in expected.values())
    for occurrence in (1, 2, 3) if full_size() else (1,):
        plan = FaultPlan(boundary=boundary, occurrence=occurrence)
        state, effects, _ = execute(scenario, ports_hook=plan.hook)
        add("scenarios run")
        add("faults injected", plan.fired)
        add("runs checked", len(expected))
        add("runs lost", len(set(expected) - set(state)))
        add("duplicate step records", duplicate_steps(state))
        beyond = sum(max(0, effects[key] - expected_effects[key] - plan.fired) for key in effects)
        add("side effects beyond the crash window", beyond)

        assert state == expected, f"{boundary} #{occurrence}: final state differs"
        assert duplicate_steps(state) == 0
        missing = {key: n for key, n in expected_effects.items() if effects[key] < n}
        assert not missing, f"side effects lost: {missing}"
        assert beyond == 0, f"side effects beyond the crash window: {effects - expected_effects}"
