"""Process kills: `moto_server` in its own process, several `stepline worker` processes,
runs in flight, workers SIGKILLed at random moments and restarted.

Every run must reach its expected final state: none lost, no step recorded twice, and
no step's code run more often than its recorded attempts plus the kills that could have
cut it off. Bounded in time; stops by itself. Reduced size by default, full size with
STEPLINE_RELIABILITY=full (200 runs, 20 kills).
"""

from __future__ import annotations

import collections
import json
import random
import time
from pathlib import Path

import boto3
import pytest

from infra.dynamo import DynamoStore
from tests.reliability.figures import add, full_size
from tests.test_cli import Process, eventually, moto_server
from tests.test_cli import start_worker as start_cli_worker

APP = "tests.reliability.kill_app:app"

# The test waits up to its own deadline (120 s, 240 s at full size) for the runs to
# finish, after starting a moto server and three workers: on a busy machine that alone
# passes pytest's default 120 s, so the limit here is above the test's own.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def start_worker(endpoint: str, test_dir: Path, *options: str) -> Process:
    # A short visibility timeout and lease: a killed worker's messages come back, and
    # its runs are free to take over, within seconds (a live worker renews both).
    return start_cli_worker(
        APP,
        endpoint,
        test_dir,
        "--visibility-timeout",
        "4",
        *options,
        env={"STEPLINE_LEASE": "6s"},
    )


# Its own deadline for the runs is 120 s (240 s at full size) after the workers start, so
# pytest's default 120 s would cut it short on a loaded machine before it could report.
@pytest.mark.timeout(420)
def test_runs_survive_workers_killed_at_random(tmp_path):
    runs, kills, workers_wanted = (200, 20, 3) if full_size() else (36, 6, 3)
    rng = random.Random(7)
    workers: list[Process] = []
    with moto_server(tmp_path) as endpoint:
        try:
            workers.append(start_worker(endpoint, tmp_path, "--create-resources"))
            while len(workers) < workers_wanted:
                workers.append(start_worker(endpoint, tmp_path))
            session = boto3.session.Session(
                region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
            )
            events = session.client("events", endpoint_url=endpoint)
            store = DynamoStore(session.client("dynamodb", endpoint_url=endpoint), "stepline")

            def put(name: str, data: dict, event_id: str) -> None:
                detail = {**data, "$stepline": {"id": event_id}}
                events.put_events(
                    Entries=[
                        {
                            "Source": "kill-test",
                            "DetailType": name,
                            "Detail": json.dumps(detail),
                            "EventBusName": "stepline",
                        }
                    ]
                )

            for number in range(runs):
                put("kill/go", {"i": number}, f"go-{number}")

            deadline = time.monotonic() + (240 if full_size() else 120)
            approvals_sent = False
            for kill in range(kills):
                time.sleep(rng.uniform(0.3, 1.5))
                if kill == kills // 2 and not approvals_sent:
                    for number in range(0, runs, 4):
                        put("kill/approve", {"i": number, "by": f"boss-{number}"}, f"ok-{number}")
                    approvals_sent = True
                victim = rng.randrange(len(workers))
                workers[victim].popen.kill()
                workers[victim].close()
                add("workers killed")
                workers[victim] = start_worker(endpoint, tmp_path)
            if not approvals_sent:
                for number in range(0, runs, 4):
                    put("kill/approve", {"i": number, "by": f"boss-{number}"}, f"ok-{number}")

            def finished() -> list:
                found = store.list_runs(workflow_id="mixed", limit=runs + 10)
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

            effects = collections.Counter(
                tuple(line.split()) for line in (tmp_path / "effects.log").read_text().splitlines()
            )
            for run in final:
                number = int(run.output["i"]) if run.output else -1
                assert run.status.value == "COMPLETED", (run.run_id, run.status, run.error)
                assert run.output == {
                    "i": number,
                    "approved_by": f"boss-{number}" if number % 4 == 0 else None,
                }
                loaded = store.load(run.run_id)
                ids = [step.id for step in loaded.steps.values()]
                add("duplicate step records", len(ids) - len(set(ids)))
                assert len(ids) == len(set(ids))
                for step in loaded.steps.values():
                    if step.kind.value == "run":
                        ran = effects[(run.run_id, step.id)]
                        assert 1 <= ran <= step.attempts + kills, (run.run_id, step.id, ran)
            for worker in workers:
                assert worker.interrupt() == 0
        finally:
            for worker in workers:
                worker.close()
