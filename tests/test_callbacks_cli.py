"""`stepline callbacks complete|fail|heartbeat ID` against a real `stepline dev`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import test_cli
from tests.test_cli import Process, cli_env, eventually, free_port, run_status

stepline = test_cli.stepline  # the fixture: `stepline(*args)` runs the CLI in a subprocess

APP = "tests.ops_cli_app:app"


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = Process(
        [sys.executable, "-m", "infra.local.cli", "dev", "--app", APP, "--port", str(port)],
        cli_env(tmp_path),
    )
    try:
        server.wait_for("Press Ctrl-C to stop", timeout=60)
        yield f"http://127.0.0.1:{port}"
        server.interrupt()
    finally:
        server.close()


def waiting_callback(stepline, endpoint: str) -> tuple[str, str]:
    """Start an expense run; return (run id, the callback id `runs show` prints)."""
    at = ("--endpoint", endpoint)
    sent = json.loads(stepline("send", "test/expense", *at, "--json").stdout)
    [run_id] = sent["outcome"]["started"]
    eventually(lambda: run_status(stepline, endpoint, run_id) == "WAITING")
    shown = json.loads(stepline("runs", "show", run_id, *at, "--json").stdout)
    [step] = shown["steps"]
    assert (step["kind"], step["status"]) == ("callback", "WAITING")
    text = stepline("runs", "show", run_id, *at).stdout
    assert step["callback_id"] in text.replace("\n", "")
    return run_id, step["callback_id"]


def test_callbacks_complete_fail_and_heartbeat_from_the_cli(stepline, endpoint):
    at = ("--endpoint", endpoint)
    run_id, callback_id = waiting_callback(stepline, endpoint)

    # A heartbeat is accepted while it waits
    beat = stepline("callbacks", "heartbeat", callback_id, *at)
    assert "heartbeat sent to callback approval" in beat.stdout

    # WHEN it is completed from the CLI THEN the run gets the result
    done = stepline("callbacks", "complete", callback_id, "--result", '{"ok": true}', *at)
    assert f"completed callback approval of run {run_id}" in done.stdout
    eventually(lambda: run_status(stepline, endpoint, run_id) == "COMPLETED")
    shown = json.loads(stepline("runs", "show", run_id, *at, "--json").stdout)
    assert shown["run"]["output"] == {"decision": {"ok": True}}

    # AND a second answer is refused (exit 1), an unknown id is not found (exit 3)
    again = stepline("callbacks", "fail", callback_id, "--error-type", "No", *at, check=False)
    assert again.returncode == 1 and "already completed" in again.stderr
    unknown = stepline("callbacks", "complete", callback_id[:-4] + "abcd", *at, check=False)
    assert unknown.returncode == 3 and "no callback has the id" in unknown.stderr
    assert callback_id.rsplit(".", 1)[1] not in unknown.stderr
    bad = stepline("callbacks", "complete", callback_id, "--result", "{nope", *at, check=False)
    assert bad.returncode == 2

    # A failure from the CLI raises StepError in the workflow
    other_run, other_id = waiting_callback(stepline, endpoint)
    stepline(
        "callbacks",
        "fail",
        other_id,
        "--error-type",
        "Rejected",
        "--error-message",
        "too much",
        *at,
    )
    eventually(lambda: run_status(stepline, endpoint, other_run) == "COMPLETED")
    shown = json.loads(stepline("runs", "show", other_run, *at, "--json").stdout)
    assert shown["run"]["output"] == {"error": "Rejected", "message": "too much"}
