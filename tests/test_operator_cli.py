"""The operator's CLI and dev loop, as a person uses them: real `stepline` subprocesses
against a real `stepline dev`.

Bulk actions by filter (asking first), pause and resume, workflows held and released,
timers fired, `runs watch`, `events list`, replay without `--app`, the banner's example
event, and a dev server that keeps its state across restarts and crashes and reloads
its workers when the app's files change.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.test_cli import (
    APP,
    ROOT,
    Process,
    cli_env,
    eventually,
    free_port,
    moto_server,
    start_worker,
)

Runner = Callable[..., subprocess.CompletedProcess[str]]


class ProcessIn(Process):
    """A background process (see tests/test_cli.py) started in a folder of our choosing."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.popen = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()


def start_dev(
    test_dir: Path, *options: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> tuple[str, Process]:
    port = free_port()
    args = [sys.executable, "-m", "infra.local.cli", "dev", "--port", str(port), *options]
    process = ProcessIn(args, env or cli_env(test_dir), cwd)
    process.wait_for("Press Ctrl-C to stop", timeout=60)
    return f"http://127.0.0.1:{port}", process


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[str]:
    endpoint, process = start_dev(tmp_path, "--app", APP, "--no-ui")
    yield endpoint
    if process.popen.poll() is None:
        process.interrupt()
    process.close()


@pytest.fixture
def stepline(tmp_path: Path) -> Runner:
    def run(
        *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "infra.local.cli", *args],
            cwd=ROOT,
            env=env or cli_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=90,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"stepline {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
            )
        return result

    return run


def started(stepline: Runner, endpoint: str, name: str, data: str = "{}") -> str:
    sent = json.loads(
        stepline("send", name, "--data", data, "--endpoint", endpoint, "--json").stdout
    )
    [run_id] = sent["outcome"]["started"]
    return str(run_id)


def stored_status(endpoint: str, run_id: str) -> str:
    """The run's status as DynamoDB holds it (not as the CLI says)."""
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    item = dynamodb.get_item(
        TableName="stepline", Key={"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "RUN"}}
    )["Item"]
    return str(item["st"]["S"])


def statuses(endpoint: str, run_ids: list[str]) -> set[str]:
    return {stored_status(endpoint, run_id) for run_id in run_ids}


def test_bulk_actions_pick_runs_by_filter_say_how_many_and_ask_first(dev, stepline):
    at = ("--endpoint", dev)
    # GIVEN three sleeping runs of one workflow and a completed run of another
    naps = [started(stepline, dev, "test/nap") for _ in range(3)]
    quick = started(stepline, dev, "test/quick", '{"name": "q"}')
    eventually(lambda: statuses(dev, naps) == {"SLEEPING"})
    # WHEN a bulk pause is asked for without --yes and there is no terminal to ask on
    refused = stepline("runs", "pause", "--workflow", "nap", *at, check=False)
    # THEN it says how many runs it would touch, refuses, and touches none
    assert refused.returncode == 1
    assert "This will pause 3 run(s) (workflow nap" in refused.stderr
    assert "pass --yes" in refused.stderr
    assert statuses(dev, naps) == {"SLEEPING"}
    # WHEN it is confirmed with --yes
    paused = json.loads(
        stepline("runs", "pause", "--workflow", "nap", "--yes", *at, "--json").stdout
    )
    # THEN each run is paused in DynamoDB, and the other workflow's run is left alone
    assert paused["selected"] == 3 and {d["run_id"] for d in paused["done"]} == set(naps)
    assert statuses(dev, naps) == {"PAUSED"}
    assert stored_status(dev, quick) == "COMPLETED"
    # AND resume (PAUSED implied) and cancel by status show their progress
    resumed = stepline("runs", "resume", "--workflow", "nap", "--yes", *at)
    assert "[3/3] ok" in resumed.stderr and "resume: 3 done, 0 skipped, of 3" in resumed.stdout
    eventually(lambda: statuses(dev, naps) == {"SLEEPING"})
    cancelled = stepline("runs", "cancel", "--status", "sleeping", "--since", "1h", "--yes", *at)
    assert "cancel: 3 done" in cancelled.stdout
    assert statuses(dev, naps) == {"CANCELLED"}
    # AND several ids are taken too; a run that cannot be acted on is skipped, and said so
    again = stepline("runs", "cancel", naps[0], naps[1][:-4], "--yes", *at)
    assert "cancel: 0 done, 2 skipped" in again.stdout and "already finished" in again.stderr
    # AND a filter that picks nothing does nothing; no filter and no id is a usage error
    none = stepline("runs", "pause", "--workflow", "no-such-workflow", *at)
    assert "no runs to pause" in none.stdout
    assert stepline("runs", "cancel", *at, check=False).returncode == 2


def test_a_bulk_action_asks_on_a_terminal_and_acts_on_yes(dev, tmp_path):
    import pty

    naps_env = cli_env(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "infra.local.cli", "send", "test/nap", "--endpoint", dev],
        cwd=ROOT,
        env=naps_env,
        capture_output=True,
        check=True,
        timeout=60,
    )
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infra.local.cli",
            "runs",
            "pause",
            "--workflow",
            "nap",
            "--endpoint",
            dev,
        ],
        cwd=ROOT,
        env=naps_env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 60
    while b"Go ahead?" not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(primary, 4096)
        except OSError:
            break
    assert b"This will pause 1 run(s)" in seen
    os.write(primary, b"y\n")
    assert process.wait(60) == 0
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert b"pause: 1 done" in seen


def test_replay_by_filter_needs_no_app_against_the_dev_server(dev, stepline, tmp_path):
    at = ("--endpoint", dev)
    (tmp_path / "decline-charges").touch()
    failed = started(stepline, dev, "test/checkout")
    eventually(lambda: stored_status(dev, failed) == "FAILED")
    (tmp_path / "decline-charges").unlink()
    replayed = json.loads(
        stepline(
            "runs",
            "replay",
            "--workflow",
            "checkout",
            "--status",
            "failed",
            "--from-step",
            "charge",
            "--yes",
            *at,
            "--json",
        ).stdout
    )
    [done] = replayed["done"]
    new_id = done["note"].removeprefix("replaying as ")
    eventually(lambda: stored_status(dev, new_id) == "COMPLETED")
    # One run, one id, no --app either
    again = json.loads(stepline("runs", "replay", failed, *at, "--json").stdout)
    assert again["replay_of"] == failed


def test_a_paused_workflow_holds_new_runs_until_it_is_resumed(dev, stepline):
    at = ("--endpoint", dev)
    stepline("workflows", "pause", "quick", *at)

    # Engines read a workflow's hold at most a second late: a run started from then on is
    # held as PAUSED and runs no step.
    def held_run() -> str | None:
        run_id = started(stepline, dev, "test/quick", '{"name": "x"}')
        return run_id if stored_status(dev, run_id) == "PAUSED" else None

    later = eventually(held_run)
    resumed = json.loads(stepline("workflows", "resume", "quick", *at, "--json").stdout)
    assert later in resumed["resumed"]
    eventually(lambda: stored_status(dev, later) == "COMPLETED")


def test_timers_fire_wakes_a_sleeping_run_now_and_runs_watch_follows_it(dev, stepline, tmp_path):
    at = ("--endpoint", dev)
    nap = started(stepline, dev, "test/nap")
    eventually(lambda: stored_status(dev, nap) == "SLEEPING")
    watch = Process(
        [sys.executable, "-m", "infra.local.cli", "runs", "watch", nap, "--interval", "0.2", *at],
        cli_env(tmp_path),
    )
    try:
        watch.wait_for("SLEEPING", timeout=30)
        fired = stepline("timers", "fire", nap[:-3], *at)
        assert "fired nap" in fired.stdout
        assert watch.popen.wait(30) == 0
        assert "COMPLETED" in watch.output and "rested" in watch.output
    finally:
        watch.close()
    assert stored_status(dev, nap) == "COMPLETED"
    # AND watching a run that goes on ends with Ctrl-C, exit 0
    other = started(stepline, dev, "test/nap")
    eventually(lambda: stored_status(dev, other) == "SLEEPING")
    watching = Process(
        [sys.executable, "-m", "infra.local.cli", "runs", "watch", other, "--interval", "0.2", *at],
        cli_env(tmp_path),
    )
    try:
        watching.wait_for("SLEEPING", timeout=30)
        assert watching.interrupt() == 0
    finally:
        watching.close()
    nothing = stepline("timers", "fire", nap, *at)
    assert "has no pending sleep" in nothing.stdout
    refused = stepline(
        "timers",
        "fire",
        nap,
        check=False,
        env={**cli_env(tmp_path), "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert refused.returncode == 1 and "only works against a local server" in refused.stderr


def test_events_list_says_what_each_event_did(dev, stepline, tmp_path):
    at = ("--endpoint", dev)
    nap = started(stepline, dev, "test/nap")
    # Routed (a callback event), but it starts nothing.
    stepline("send", "stepline/callback.heartbeat", "--data", '{"callbackId": "x"}', *at)
    listed = stepline("events", "list", *at).stdout
    assert f"started run {nap}" in listed
    assert "stepline/callback.heartbeat" in listed and "started nothing" in listed
    as_json = json.loads(stepline("events", "list", "--name", "test/nap", *at, "--json").stdout)
    assert [row["started"] for row in as_json] == [[nap]]
    # AND --follow prints each new event with what it did, as it happens, until Ctrl-C
    follow = Process(
        [
            sys.executable,
            "-m",
            "infra.local.cli",
            "events",
            "list",
            "--follow",
            "--interval",
            "0.2",
            *at,
        ],
        cli_env(tmp_path),
    )
    try:
        follow.wait_for(f"started run {nap}", timeout=60)
        later = started(stepline, dev, "test/quick", '{"name": "later"}')
        follow.wait_for(f"started run {later}", timeout=60)
        assert follow.interrupt() == 0
    finally:
        follow.close()


def test_the_banner_names_the_dashboard_and_an_example_event_of_the_app(tmp_path, stepline):
    endpoint, process = start_dev(tmp_path, "--app", APP, "--ui-port", str(free_port()))
    try:
        assert re.search(r"dashboard  http://127\.0\.0\.1:\d+", process.output)
        ready = re.search(r"Ready in ([\d.]+) s", process.output)
        assert ready is not None
        example = re.search(r"stepline send (.+) --endpoint", process.output)
        assert example is not None
        args = shlex.split(example.group(1))
        assert args[0] in {
            "test/pro",
            "test/quick",
            "test/checkout",
            "test/nap",
            "test/hold",
            "test/long",
        }
        sent = stepline("send", *args, "--endpoint", endpoint)
        assert "started run" in sent.stdout
    finally:
        process.interrupt()
        process.close()


@pytest.mark.timeout(300)  # several process start-ups; slow on a busy machine
def test_the_dev_server_keeps_its_state_across_a_restart_and_a_crash(tmp_path, stepline):
    state = tmp_path / "kept"
    endpoint, process = start_dev(
        tmp_path, "--app", APP, "--no-ui", "--state", str(state), "--save-every", "0.3"
    )
    nap = started(stepline, endpoint, "test/nap")
    quick = started(stepline, endpoint, "test/quick", '{"name": "ann"}')
    eventually(lambda: stored_status(endpoint, nap) == "SLEEPING")
    assert process.interrupt() == 0 and "state saved in" in process.output
    # WHEN it starts again (on another port, even)
    endpoint, process = start_dev(
        tmp_path, "--app", APP, "--no-ui", "--state", str(state), "--save-every", "0.3"
    )
    try:
        # THEN its runs are there, and the sleeping one still has its timer
        assert "restored 2 run(s)" in process.output and "1 pending schedule(s)" in process.output
        assert stored_status(endpoint, quick) == "COMPLETED"
        assert stored_status(endpoint, nap) == "SLEEPING"
        stepline("timers", "fire", nap, "--endpoint", endpoint)
        eventually(lambda: stored_status(endpoint, nap) == "COMPLETED")
        # WHEN it is killed outright, after its next save
        before = (state / "meta.json").read_text()
        crashed = started(stepline, endpoint, "test/nap")
        eventually(lambda: stored_status(endpoint, crashed) == "SLEEPING")
        eventually(
            lambda: (
                (state / "meta.json").read_text() != before
                and crashed in (state / "table.jsonl").read_text()
            )
        )
        process.popen.send_signal(signal.SIGKILL)
        process.popen.wait(10)
    finally:
        process.close()
    endpoint, process = start_dev(tmp_path, "--app", APP, "--no-ui", "--state", str(state))
    try:
        # THEN what it had saved is there, and goes on
        assert stored_status(endpoint, crashed) == "SLEEPING"
        stepline("timers", "fire", crashed, "--endpoint", endpoint)
        eventually(lambda: stored_status(endpoint, crashed) == "COMPLETED")
        # AND --fresh starts empty
    finally:
        process.interrupt()
        process.close()
    endpoint, process = start_dev(
        tmp_path, "--app", APP, "--no-ui", "--state", str(state), "--fresh"
    )
    try:
        assert json.loads(stepline("runs", "list", "--endpoint", endpoint, "--json").stdout) == []
    finally:
        process.interrupt()
        process.close()


APP_V1 = """
from sdk import App, Context

app = App("reloading")


@app.workflow("greet", trigger="say/hi")
def greet(ctx: Context) -> str:
    return ctx.step.run("say", lambda: "VERSION-1")
"""


@pytest.mark.timeout(300)  # several process start-ups; slow on a busy machine
def test_reload_restarts_the_workers_when_the_app_changes_and_keeps_state(tmp_path, stepline):
    project = tmp_path / "project"
    project.mkdir()
    module = project / "reload_app.py"
    module.write_text(APP_V1)
    env = {**cli_env(tmp_path), "PYTHONPATH": f"{project}{os.pathsep}{ROOT}"}
    endpoint, process = start_dev(
        tmp_path, "--app", "reload_app:app", "--no-ui", "--reload", cwd=project, env=env
    )
    try:
        assert "workers restart when the app's files change" in process.output
        first = started(stepline, endpoint, "say/hi")
        eventually(lambda: stored_status(endpoint, first) == "COMPLETED", timeout=30)
        # WHEN the workflow's file changes
        module.write_text(APP_V1.replace("VERSION-1", "VERSION-2"))
        process.wait_for("restarting the workers", timeout=30)

        # THEN new runs run the new code, and the old run is still there
        def second_output() -> Any:
            run_id = started(stepline, endpoint, "say/hi")
            eventually(lambda: stored_status(endpoint, run_id) == "COMPLETED", timeout=30)
            shown = json.loads(
                stepline("runs", "show", run_id, "--endpoint", endpoint, "--json").stdout
            )
            return shown["run"]["output"] == "VERSION-2"

        eventually(second_output, timeout=60)
        assert stored_status(endpoint, first) == "COMPLETED"
    finally:
        process.interrupt()
        process.close()


def fetch_page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode())


@pytest.mark.timeout(300)  # several process start-ups; slow on a busy machine
def test_pause_resume_one_run_and_stepline_ui_on_a_separately_started_moto_server(
    tmp_path, stepline
):
    """`stepline ui` against a plain `moto_server` (no `stepline dev`): what a person does
    against any endpoint that is not the dev server, and the nearest a test comes to a
    deployed stack."""
    with moto_server(tmp_path) as endpoint:
        at = ("--endpoint", endpoint)
        worker = start_worker(APP, endpoint, tmp_path, "--create-resources")
        ui: Process | None = None
        try:
            # GIVEN a sleeping run
            nap = started(stepline, endpoint, "test/nap")
            try:
                eventually(lambda: stored_status(endpoint, nap) == "SLEEPING", timeout=120)
            except AssertionError:
                raise AssertionError(
                    f"run {nap} is {stored_status(endpoint, nap)}, not SLEEPING; "
                    f"the worker said:\n{worker.output}"
                ) from None
            # WHEN one run is paused by (a unique start of) its id, THEN DynamoDB says PAUSED
            paused = stepline("runs", "pause", nap[:-4], *at)
            assert paused.stdout.strip() == f"paused {nap}"
            assert stored_status(endpoint, nap) == "PAUSED"
            again = stepline("runs", "pause", nap, *at)
            assert "nothing to pause" in again.stdout
            # WHEN it is resumed, THEN it goes back to sleep
            resumed = stepline("runs", "resume", nap, *at)
            assert resumed.stdout.strip() == f"resumed {nap}"
            eventually(lambda: stored_status(endpoint, nap) == "SLEEPING", timeout=120)

            # WHEN the dashboard is asked to listen on every address without the flag,
            # THEN it refuses, saying which flag would allow it
            refused = stepline("ui", "--host", "0.0.0.0", *at, check=False)
            assert refused.returncode == 2 and "--allow-remote" in refused.stderr

            # WHEN it is started against the moto server, with the app for its definitions
            port = free_port()
            ui = Process(
                [
                    sys.executable,
                    "-m",
                    "infra.local.cli",
                    "ui",
                    "--port",
                    str(port),
                    "--app",
                    APP,
                    *at,
                ],
                cli_env(tmp_path),
            )
            ui.wait_for("Press Ctrl-C to stop", timeout=60)
            url = re.search(r"dashboard: (http://\S+)", ui.output).group(1)
            assert url == f"http://127.0.0.1:{port}"
            # THEN its pages show the run, its sleep, the workflows and the dead letters
            assert f'data-run="{nap}"' in fetch_page(f"{url}/runs")
            assert "sleeping until" in fetch_page(f"{url}/runs/{nap}")
            assert "test/nap" in fetch_page(f"{url}/workflows")
            assert fetch_page(f"{url}/dead-letters").count('class="dlq"') == 2
            assert ui.interrupt() == 0 and "stopped" in ui.output
            # AND with the flag it listens there, after a warning
            exposed = Process(
                [
                    sys.executable,
                    "-m",
                    "infra.local.cli",
                    "ui",
                    "--host",
                    "0.0.0.0",
                    "--allow-remote",
                    "--port",
                    str(free_port()),
                    *at,
                ],
                cli_env(tmp_path),
            )
            try:
                exposed.wait_for("Press Ctrl-C to stop", timeout=60)
                assert "WARNING: the dashboard listens on 0.0.0.0" in exposed.output
                assert exposed.interrupt() == 0
            finally:
                exposed.close()
        finally:
            if ui is not None:
                ui.close()
            worker.interrupt()
