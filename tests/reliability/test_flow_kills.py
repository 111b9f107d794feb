"""Concurrency under process kills: `moto_server` in its own process, three `stepline
worker` processes, runs of `Concurrency(limit=2, key=...)` in flight, workers SIGKILLed
at random moments and restarted.

What must hold: at no moment do more than two runs of a key execute steps (observed from
the step start and end times the steps log; a step cut off by a kill ends at the kill);
a slot held by a killed worker is recovered by itself when its lease expires (6 s here),
so every run completes; no step is recorded twice. It also measures how long a killed
worker's slot stayed taken: from the kill to the next start of a step of its key.
Reduced size by default, full size with STEPLINE_RELIABILITY=full.
"""

from __future__ import annotations

import collections
import random
import time
from pathlib import Path

import boto3
import pytest

from infra.dynamo import DynamoStore
from tests.reliability.figures import FIGURES, add, full_size
from tests.reliability.test_kills import start_worker
from tests.test_cli import Process, eventually, moto_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

LIMIT = 2


def test_concurrency_holds_and_slots_free_themselves_when_workers_are_killed(tmp_path):
    runs, kills = (60, 8) if full_size() else (12, 2)
    rng = random.Random(11)
    workers: list[Process] = []
    killed: list[tuple[int, float]] = []  # (pid, when)
    with moto_server(tmp_path) as endpoint:
        try:
            workers.append(start_worker(endpoint, tmp_path, "--create-resources"))
            while len(workers) < 3:
                workers.append(start_worker(endpoint, tmp_path))
            session = boto3.session.Session(
                region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
            )
            events = session.client("events", endpoint_url=endpoint)
            store = DynamoStore(session.client("dynamodb", endpoint_url=endpoint), "stepline")
            # Most runs share key k0 (the contended one); a few are k1's.
            entries = [
                {
                    "Source": "kill-test",
                    "DetailType": "kill/limited",
                    "Detail": f'{{"i": {n}, "k": "k{int(n % 6 == 5)}", '
                    f'"$stepline": {{"id": "limited-{n}"}}}}',
                    "EventBusName": "stepline",
                }
                for n in range(runs)
            ]
            for start in range(0, runs, 10):
                events.put_events(Entries=entries[start : start + 10])

            deadline = time.monotonic() + (300 if full_size() else 150)
            log = tmp_path / "slots.log"
            for _ in range(kills):
                # Kill while a step executes, when there is one to cut off.
                eventually(lambda: log.exists(), timeout=60)
                time.sleep(rng.uniform(0.5, 2.0))
                victim = rng.randrange(len(workers))
                pid = workers[victim].popen.pid
                workers[victim].popen.kill()
                killed.append((pid, time.time()))
                workers[victim].close()
                add("workers killed")
                workers[victim] = start_worker(endpoint, tmp_path)

            def finished() -> list:
                found = store.list_runs(workflow_id="limited", limit=runs + 10)
                if len(found) == runs and all(run.status.terminal for run in found):
                    return found
                assert time.monotonic() < deadline, (
                    f"{sum(r.status.terminal for r in found)}/{runs} runs finished in time; "
                    f"statuses: {collections.Counter(r.status.value for r in found)}"
                )
                return []

            final = eventually(finished, timeout=deadline - time.monotonic() + 1)
            add("scenarios run")
            add("runs checked", runs)
            add("runs lost", runs - len(final))
            for run in final:
                assert run.status.value == "COMPLETED", (run.run_id, run.status, run.error)
                ids = [step.id for step in store.load(run.run_id).steps.values()]
                add("duplicate step records", len(ids) - len(set(ids)))
                assert len(ids) == len(set(ids))

            busiest, held = overlaps(log, dict(killed))
            add_max("most runs of a key executing at once", busiest)
            if held:
                add_max("slowest recovery of a killed worker's slot (s)", round(max(held)))
            assert busiest <= LIMIT, f"{busiest} runs of one key executed at once"
            for worker in workers:
                assert worker.interrupt() == 0
        finally:
            for worker in workers:
                worker.close()


def add_max(name: str, value: int) -> None:
    FIGURES[name] = max(FIGURES[name], value)


def overlaps(log: Path, kill_time: dict[int, float]) -> tuple[int, list[float]]:
    """The most step intervals of one key open at once, and for each step a kill cut off,
    how long after the kill the next step of its key started."""
    starts: dict[tuple[str, str, int], tuple[str, float]] = {}
    intervals: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    for line in log.read_text().splitlines():
        kind, run_id, step, key, pid, when = line.split()
        ident = (run_id, step, int(pid))
        if kind == "start":
            starts[ident] = (key, float(when))
        else:
            started = starts.pop(ident)
            intervals[key].append((started[1], float(when)))
    cut: list[tuple[str, float]] = []
    for (_, _, pid), (key, started) in starts.items():
        # Never ended: its worker was killed (at that moment it stopped executing).
        ended = kill_time.get(pid, started)
        intervals[key].append((started, ended))
        if pid in kill_time:
            cut.append((key, ended))
    busiest = 0
    for spans in intervals.values():
        edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
        open_now = 0
        for _, change in edges:
            open_now += change
            busiest = max(busiest, open_now)
    held = []
    for key, when in cut:
        later = [s for s, _ in intervals[key] if s > when]
        if later:
            held.append(min(later) - when)
    return busiest, held
