"""The `stepline` CLI end to end: real subprocesses, a real moto server, real time."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.cli_app:app"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Process:
    """A background process whose output is collected, with a wait for a line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never printed {text!r}:\n{self.output}")
            time.sleep(0.05)

    def interrupt(self, timeout: float = 30) -> int:
        self.popen.send_signal(signal.SIGINT)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError(f"did not stop on Ctrl-C:\n{self.output}") from None
        self.close()
        return code

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self._reader.join(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def cli_env(test_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STEPLINE_", "AWS_", "PYTEST_"))
    }
    env.update(STEPLINE_TEST_DIR=str(test_dir), PYTHONUNBUFFERED="1")
    # Each test's `stepline dev` keeps its state in the test's own folder, not the project's.
    env["STEPLINE_DEV_STATE"] = str(test_dir / "dev-state")
    return env


@pytest.fixture
def stepline(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "infra.local.cli", *args],
            cwd=ROOT,
            env=cli_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"stepline {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
            )
        return result

    return run


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[str, Process]]:
    port = free_port()
    process = Process(
        [sys.executable, "-m", "infra.local.cli", "dev", "--app", APP, "--port", str(port)],
        cli_env(tmp_path),
    )
    process.wait_for("Press Ctrl-C to stop")
    yield f"http://127.0.0.1:{port}", process
    if process.popen.poll() is None:
        process.interrupt()
    process.close()


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def moto_server(directory: Path) -> Iterator[str]:
    """`moto_server` in a process of its own; yields its endpoint."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-p", str(port)],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: listening(port), timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def start_worker(
    app: str, endpoint: str, test_dir: Path, *options: str, env: dict[str, str] | None = None
) -> Process:
    """A `stepline worker` process, once it says it is serving (`env`: extra variables)."""
    worker = Process(
        [
            sys.executable,
            "-m",
            "infra.local.cli",
            "worker",
            "--app",
            app,
            "--endpoint",
            endpoint,
            *options,
        ],
        {**cli_env(test_dir), **(env or {})},
    )
    worker.wait_for("serving", timeout=60)
    return worker


def eventually(check: Callable[[], Any], timeout: float = 60) -> Any:
    """Wait for `check()` to hold; the generous timeout only costs time when it never does
    (a machine busy with other work can be slow)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition never held")
        time.sleep(0.1)


def run_status(stepline, endpoint: str, run_id: str) -> str:
    shown = json.loads(stepline("runs", "show", run_id, "--endpoint", endpoint, "--json").stdout)
    return str(shown["run"]["status"])


def the_run_of(stepline, endpoint: str, workflow: str) -> dict[str, Any] | None:
    listed = json.loads(
        stepline("runs", "list", "--workflow", workflow, "--endpoint", endpoint, "--json").stdout
    )
    return listed[0] if listed else None


def test_dev_server_send_list_show_cancel_replay_and_stop(dev_server, stepline, tmp_path):
    endpoint, server = dev_server
    at = ("--endpoint", endpoint)

    # GIVEN the dev server, WHEN an event is sent, THEN a run appears and completes.
    sent = json.loads(
        stepline("send", "test/quick", "--data", '{"name": "ann"}', *at, "--json").stdout
    )
    assert sent["name"] == "test/quick"
    quick = eventually(
        lambda: (r := the_run_of(stepline, endpoint, "quick")) and r["status"] == "COMPLETED" and r
    )
    assert quick["output"] == "hello ann"
    assert quick["event"]["id"] == sent["id"]

    shown = json.loads(stepline("runs", "show", quick["run_id"], *at, "--json").stdout)
    [step] = shown["steps"]
    assert step["id"] == "hello" and step["status"] == "COMPLETED" and step["attempts"] == 1
    assert step["started_at"] and step["ended_at"]
    timeline = stepline("runs", "show", quick["run_id"], *at).stdout
    assert "hello" in timeline and "COMPLETED" in timeline and "hello ann" in timeline

    # A sleeping run is cancelled; it shows as cancelled in list and show.
    stepline("send", "test/nap", *at)
    nap = eventually(
        lambda: (r := the_run_of(stepline, endpoint, "nap")) and r["status"] == "SLEEPING" and r
    )
    cancel = json.loads(stepline("runs", "cancel", nap["run_id"], *at, "--json").stdout)
    assert cancel == {"run_id": nap["run_id"], "cancelled": True, "status": "CANCELLED"}
    cancelled = json.loads(stepline("runs", "list", "--status", "CANCELLED", *at, "--json").stdout)
    assert [run["run_id"] for run in cancelled] == [nap["run_id"]]
    again = stepline("runs", "cancel", nap["run_id"], *at)
    assert "already finished (CANCELLED)" in again.stdout

    # A failed run is replayed from the failing step once the cause is fixed.
    (tmp_path / "decline-charges").touch()
    stepline("send", "test/checkout", *at)
    failed = eventually(
        lambda: (r := the_run_of(stepline, endpoint, "checkout")) and r["status"] == "FAILED" and r
    )
    assert "card declined" in failed["error"]["message"]
    (tmp_path / "decline-charges").unlink()
    replay = json.loads(
        stepline(
            "runs", "replay", failed["run_id"], "--from-step", "charge", "--app", APP, *at, "--json"
        ).stdout
    )
    new_id = replay["run_id"]
    eventually(lambda: run_status(stepline, endpoint, new_id) == "COMPLETED")
    replayed = json.loads(stepline("runs", "show", new_id, *at, "--json").stdout)
    assert replayed["run"]["replay_of"] == failed["run_id"]
    assert replayed["run"]["output"] == "shipped"
    assert [s["id"] for s in replayed["steps"]] == ["reserve", "charge", "ship"]
    effects = (tmp_path / "effects.log").read_text().split()
    # "reserve" was kept from the failed run, not run again; "charge" ran once per run.
    assert effects.count("reserve") == 1
    assert effects.count("charge") == 2
    assert effects.count("ship") == 1

    # WHEN Ctrl-C arrives, THEN the server stops cleanly.
    assert server.interrupt() == 0
    assert "stopped" in server.output


def test_exit_codes_and_messages_scripts_can_rely_on(dev_server, stepline):
    endpoint, _ = dev_server
    at = ("--endpoint", endpoint)

    missing = stepline("runs", "show", "no-such-run", *at, check=False)
    assert missing.returncode == 3
    assert "no run 'no-such-run'" in missing.stderr and "runs list" in missing.stderr

    bad_data = stepline("send", "x", "--data", "{oops", *at, check=False)
    assert bad_data.returncode == 2 and "--data is not JSON" in bad_data.stderr

    stepline("send", "test/nap", *at)
    nap = eventually(
        lambda: (r := the_run_of(stepline, endpoint, "nap")) and r["status"] == "SLEEPING" and r
    )
    refused = stepline("runs", "replay", nap["run_id"], "--app", APP, *at, check=False)
    assert refused.returncode == 1 and "only a finished run" in refused.stderr

    unknown_step = stepline("runs", "cancel", nap["run_id"], *at)
    assert unknown_step.returncode == 0
    no_step = stepline(
        "runs", "replay", nap["run_id"], "--from-step", "nope", "--app", APP, *at, check=False
    )
    assert no_step.returncode == 3 and "has no step 'nope'" in no_step.stderr

    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = stepline("runs", "list", "--endpoint", closed, check=False)
    assert unreachable.returncode == 4
    assert "cannot reach" in unreachable.stderr and "stepline dev" in unreachable.stderr

    broken_app = stepline(
        "dev", "--app", "no_such_module:app", "--port", str(free_port()), check=False
    )
    assert broken_app.returncode == 5
    assert "could not import 'no_such_module'" in broken_app.stderr
    assert "ModuleNotFoundError" in broken_app.stderr


def test_workers_against_a_separately_started_moto_server(tmp_path, stepline):
    workers: list[Process] = []
    with moto_server(tmp_path) as endpoint:
        try:
            workers.append(start_worker(APP, endpoint, tmp_path, "--create-resources"))
            # A second worker on the same endpoint: both take messages, nothing runs twice.
            workers.append(start_worker(APP, endpoint, tmp_path))

            for index in range(6):
                stepline("send", "test/checkout", "--id", f"order-{index}", "--endpoint", endpoint)

            def all_done() -> bool:
                listed = json.loads(
                    stepline(
                        "runs", "list", "--workflow", "checkout", "--endpoint", endpoint, "--json"
                    ).stdout
                )
                return len(listed) == 6 and all(run["status"] == "COMPLETED" for run in listed)

            eventually(all_done, timeout=40)
            effects = (tmp_path / "effects.log").read_text().split()
            assert effects.count("reserve") == effects.count("charge") == effects.count("ship") == 6
            for worker in workers:
                assert worker.interrupt() == 0
                assert "stopped" in worker.output
        finally:
            for worker in workers:
                worker.close()
