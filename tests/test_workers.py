"""`stepline worker` processes against a real moto server, in real time.

What a team running workers sees: a step that outlasts its message's visibility timeout
runs once however many workers there are; a cancel stops a run before its next step; a
step that calls `sys.exit()` costs that one message a redelivery, and the worker keeps
serving.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3

from infra.dynamo import DynamoStore
from tests.test_cli import ROOT, Process, cli_env, eventually, moto_server, start_worker

APP = "tests.worker_app:app"


def effects(test_dir: Path) -> list[str]:
    log = test_dir / "effects.log"
    return log.read_text().splitlines() if log.exists() else []


class Endpoint:
    def __init__(self, url: str) -> None:
        session = boto3.session.Session(
            region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        )
        self.events = session.client("events", endpoint_url=url)
        self.store = DynamoStore(session.client("dynamodb", endpoint_url=url), "stepline")
        buses = {bus["Name"] for bus in self.events.list_event_buses()["EventBuses"]}
        self.bus = "stepline" if "stepline" in buses else "default"

    def send(self, name: str, data: dict | None = None) -> None:
        self.events.put_events(
            Entries=[
                {
                    "Source": "test",
                    "DetailType": name,
                    "Detail": json.dumps(data or {}),
                    "EventBusName": self.bus,
                }
            ]
        )

    def the_run(self, workflow: str):
        runs = self.store.list_runs(workflow_id=workflow, limit=5)
        return runs[0] if runs else None


def test_a_step_longer_than_the_visibility_timeout_runs_once_with_two_workers(tmp_path):
    with moto_server(tmp_path) as url:
        workers: list[Process] = []
        try:
            # GIVEN two workers whose messages stay hidden for 2 s unless extended
            workers.append(
                start_worker(APP, url, tmp_path, "--create-resources", "--visibility-timeout", "2")
            )
            workers.append(start_worker(APP, url, tmp_path, "--visibility-timeout", "2"))
            endpoint = Endpoint(url)
            # WHEN a run's step works for 6 s, three visibility timeouts
            endpoint.send("test/long", {"seconds": 6})
            run = eventually(
                lambda: (r := endpoint.the_run("long-step")) and r.status.terminal and r,
                timeout=120,
            )
            # THEN the step ran once, in one worker, and the run completed
            assert run.status.value == "COMPLETED", run.error
            assert effects(tmp_path).count("long started") == 1
        finally:
            for worker in workers:
                worker.close()


def test_a_cancel_stops_a_run_before_its_next_step(tmp_path):
    with moto_server(tmp_path) as url:
        worker = start_worker(APP, url, tmp_path, "--create-resources")
        try:
            endpoint = Endpoint(url)
            # GIVEN a run whose first step is still working
            endpoint.send("test/gated")
            eventually(lambda: "a started" in effects(tmp_path), timeout=60)
            run = endpoint.the_run("gated")
            # WHEN it is cancelled, and the step then finishes
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "infra.local.cli",
                    "runs",
                    "cancel",
                    run.run_id,
                    "--endpoint",
                    url,
                    "--json",
                ],
                cwd=ROOT,
                env=cli_env(tmp_path),
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            assert json.loads(result.stdout)["cancelled"] is True
            (tmp_path / "release").touch()
            # THEN the invocation stops before the next step
            eventually(
                lambda: (
                    "stopping this invocation" in worker.output
                    or "cancelled while it ran" in worker.output
                ),
                timeout=60,
            )
            assert "a done" in effects(tmp_path)
            assert "b" not in effects(tmp_path) and "c" not in effects(tmp_path)
            assert endpoint.store.get_run(run.run_id).status.value == "CANCELLED"
        finally:
            worker.close()


def test_a_step_that_calls_sys_exit_is_redelivered_and_the_worker_keeps_serving(tmp_path):
    with moto_server(tmp_path) as url:
        # A short visibility timeout: the failed message comes back within seconds.
        worker = start_worker(APP, url, tmp_path, "--create-resources", "--visibility-timeout", "2")
        try:
            endpoint = Endpoint(url)
            # WHEN a step calls sys.exit() on its first attempt
            endpoint.send("test/quit")
            run = eventually(
                lambda: (r := endpoint.the_run("quitter")) and r.status.terminal and r,
                timeout=120,
            )
            # THEN the worker said so, the message came back, and the run completed
            assert run.status.value == "COMPLETED", run.error
            assert effects(tmp_path).count("quit") == 1
            assert "quit survived" in effects(tmp_path)
            assert "SystemExit" in worker.output
            # AND the worker still serves new events
            endpoint.send("test/plain")
            eventually(
                lambda: (r := endpoint.the_run("plain")) and r.status.value == "COMPLETED",
                timeout=60,
            )
            assert worker.popen.poll() is None
        finally:
            worker.close()
