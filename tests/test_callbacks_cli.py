"""`stepline callbacks complete|fail|heartbeat ID` against a real `stepline dev`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import test_cli
from tests.test_cli import Process, cli_env, eventually, free_port

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


def shown(stepline, endpoint: str, run_id: str) -> dict:
    return json.loads(stepline("runs", "show", run_id, "--endpoint", endpoint, "--json").stdout)


def once(stepline, endpoint: str, run_id: str, status: str) -> dict:
    """`runs show --json` of the run, once it has `status` (one CLI call per look)."""
    return eventually(
        lambda: (view := shown(stepline, endpoint, run_id))["run"]["status"] == status and view
    )


def test_callbacks_complete_fail_and_heartbeat_from_the_cli(stepline, endpoint):
    at = ("--endpoint", endpoint)
    # GIVEN two expense runs, each waiting on a callback whose id `runs show` prints
    run_ids = []
    for _ in range(2):
        sent = json.loads(stepline("send", "test/expense", *at, "--json").stdout)
        run_ids.extend(sent["outcome"]["started"])
    callback_ids = []
    for run_id in run_ids:
        [step] = once(stepline, endpoint, run_id, "WAITING")["steps"]
        assert (step["kind"], step["status"]) == ("callback", "WAITING")
        callback_ids.append(step["callback_id"])
    run_id, other_run = run_ids
    callback_id, other_id = callback_ids
    text = stepline("runs", "show", run_id, *at).stdout
    assert callback_id in text.replace("\n", "")

    # A heartbeat is accepted while it waits
    beat = stepline("callbacks", "heartbeat", callback_id, *at)
    assert "heartbeat sent to callback approval" in beat.stdout

    # WHEN it is completed from the CLI THEN the run gets the result
    done = stepline("callbacks", "complete", callback_id, "--result", '{"ok": true}', *at)
    assert f"completed callback approval of run {run_id}" in done.stdout
    view = once(stepline, endpoint, run_id, "COMPLETED")
    assert view["run"]["output"] == {"decision": {"ok": True}}

    # AND a second answer is refused (exit 1), an unknown id is not found (exit 3)
    again = stepline("callbacks", "fail", callback_id, "--error-type", "No", *at, check=False)
    assert again.returncode == 1 and "already completed" in again.stderr
    unknown = stepline("callbacks", "complete", callback_id[:-4] + "abcd", *at, check=False)
    assert unknown.returncode == 3 and "no callback has the id" in unknown.stderr
    assert callback_id.rsplit(".", 1)[1] not in unknown.stderr
    bad = stepline("callbacks", "complete", other_id, "--result", "{nope", *at, check=False)
    assert bad.returncode == 2

    # A failure from the CLI raises StepError in the workflow
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
    view = once(stepline, endpoint, other_run, "COMPLETED")
    assert view["run"]["output"] == {"error": "Rejected", "message": "too much"}
