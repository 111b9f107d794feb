"""What a person at the `stepline` CLI sees: whole ids at any width, prefixes of run ids,
tracebacks, the step a run is executing, what `send` started, `--version`.

Real subprocesses against a real `stepline dev` (moto's server), as in test_cli.py; some
run in a pseudo-terminal of a chosen size, as a person's shell would.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.clients import Clients
from infra.resources import create_resources
from infra.settings import Settings
from tests.cli_app import LONG_WORKFLOW
from tests.test_cli import APP, ROOT, Process, cli_env, eventually, free_port, moto_server

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def test_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-usability")


@pytest.fixture(scope="module")
def endpoint(test_dir: Path) -> Iterator[str]:
    """One `stepline dev` for the module (each test sends its own events)."""
    port = free_port()
    server = Process(
        [sys.executable, "-m", "infra.local.cli", "dev", "--app", APP, "--port", str(port)],
        cli_env(test_dir),
    )
    try:
        server.wait_for("Press Ctrl-C to stop", timeout=60)
        yield f"http://127.0.0.1:{port}"
        assert server.interrupt() == 0
    finally:
        server.close()


def _runner(test_dir: Path) -> Runner:
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "infra.local.cli", *args],
            cwd=ROOT,
            env=_plain_env(test_dir),
            capture_output=True,
            text=True,
            timeout=90,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"stepline {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
            )
        return result

    return run


@pytest.fixture
def stepline(test_dir: Path) -> Runner:
    return _runner(test_dir)


def _plain_env(test_dir: Path) -> dict[str, str]:
    env = cli_env(test_dir)
    for variable in ("COLUMNS", "LINES"):
        env.pop(variable, None)
    return env


def in_terminal(test_dir: Path, columns: int, *args: str) -> str:
    """Run `stepline ARGS` in a pseudo-terminal `columns` wide; its output, without colours."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**_plain_env(test_dir), "TERM": "xterm-256color"}
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local.cli", *args],
        cwd=ROOT,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not data:
                break
            chunks.append(data)
        assert process.wait(30) == 0, b"".join(chunks).decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
    text = b"".join(chunks).decode()
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r\n", "\n")


def send(stepline: Runner, endpoint: str, name: str, *options: str) -> dict[str, Any]:
    result = stepline("send", name, *options, "--endpoint", endpoint, "--json")
    return dict(json.loads(result.stdout))


def started_run(stepline: Runner, endpoint: str, name: str, *options: str) -> str:
    """Send an event; the id of the run it started (said by `send`, or found in `runs list`:
    the tests of other symptoms must not depend on this one's fix)."""
    sent = send(stepline, endpoint, name, *options)
    if (sent.get("outcome") or {}).get("started"):
        return str(sent["outcome"]["started"][0])

    def the_run() -> str | None:
        listed = stepline("runs", "list", "--limit", "100", "--endpoint", endpoint, "--json")
        found = [r["run_id"] for r in json.loads(listed.stdout) if r["event"]["id"] == sent["id"]]
        return found[0] if found else None

    return str(eventually(the_run))


def status_of(stepline: Runner, endpoint: str, run_id: str) -> str:
    shown = json.loads(stepline("runs", "show", run_id, "--endpoint", endpoint, "--json").stdout)
    return str(shown["run"]["status"])


def assert_whole(output: str, run_id: str) -> None:
    """Run ids (and workflow ids) appear only whole: never cut with '…', never broken
    over two lines."""
    assert run_id in output, output
    digest = run_id.rsplit("-", 1)[1]
    for line in output.splitlines():
        if any(digest[i : i + 8] in line for i in range(len(digest) - 7)):
            assert run_id in line, f"a run id broken over lines in:\n{output}"
        for found in re.findall(re.escape(LONG_WORKFLOW) + r"-[0-9a-f]*", line):
            assert len(found) == len(run_id), f"a cut run id in:\n{output}"
        for shown in re.findall(r"(\S{8,})…", line):
            assert not LONG_WORKFLOW.startswith(shown), f"a cut id in:\n{output}"
            assert not shown.startswith(LONG_WORKFLOW), f"a cut id in:\n{output}"


def assert_fits(output: str, columns: int) -> None:
    """Each line fits the terminal, except a single field (an id) wider than it."""
    for line in output.splitlines():
        assert len(line) <= columns or "  " not in line.strip(), (
            f"a line of {len(line)} columns in a terminal of {columns}:\n{output}"
        )


# -- ids -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_run(endpoint: str, test_dir: Path) -> str:
    """A completed run of the workflow with a long id."""
    run = _runner(test_dir)
    run_id = started_run(run, endpoint, "test/long")
    eventually(lambda: status_of(run, endpoint, run_id) == "COMPLETED")
    return run_id


def test_piped_output_keeps_each_run_on_one_line_with_its_id_whole(stepline, endpoint, long_run):
    at = ("--endpoint", endpoint)
    listed = stepline("runs", "list", "--workflow", LONG_WORKFLOW, *at).stdout
    assert_whole(listed, long_run)
    assert any(long_run in line and "COMPLETED" in line for line in listed.splitlines())
    assert_whole(stepline("runs", "show", long_run, *at).stdout, long_run)


def test_columns_narrower_than_an_id_give_blocks_with_the_id_whole(endpoint, test_dir, long_run):
    at = ("--endpoint", endpoint)
    env = {**_plain_env(test_dir), "COLUMNS": "50"}
    for command in (["runs", "list", "--workflow", LONG_WORKFLOW], ["runs", "show", long_run]):
        output = subprocess.run(
            [sys.executable, "-m", "infra.local.cli", *command, *at],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert_whole(output, long_run)
        assert_fits(output, 50)


@pytest.mark.parametrize("columns", [40, 100, 250])
def test_output_follows_the_terminal_width_and_never_cuts_an_id(
    endpoint, test_dir, long_run, columns
):
    at = ("--endpoint", endpoint)
    listed = in_terminal(test_dir, columns, "runs", "list", "--workflow", LONG_WORKFLOW, *at)
    shown = in_terminal(test_dir, columns, "runs", "show", long_run, *at)
    for output in (listed, shown):
        assert_whole(output, long_run)
        assert_fits(output, columns)
    if columns == 250:  # wide enough for the table: the id and its status on one row
        assert any(long_run in line and "COMPLETED" in line for line in listed.splitlines())


def test_runs_show_cancel_and_replay_take_a_unique_prefix_and_explain_a_cut_id(
    stepline, endpoint, test_dir
):
    at = ("--endpoint", endpoint)
    run_id = started_run(stepline, endpoint, "test/long")
    eventually(lambda: status_of(stepline, endpoint, run_id) == "COMPLETED")

    # A prefix that only this run has.
    unique = run_id[: len(LONG_WORKFLOW) + 8]
    shown = stepline("runs", "show", unique, *at, "--json")
    assert json.loads(shown.stdout)["run"]["run_id"] == run_id
    assert f"is the start of run {run_id}" in shown.stderr

    # An id pasted as a table printed it cut: read as the prefix it shows, and said so.
    pasted = stepline("runs", "show", unique + "…", *at)
    assert run_id in pasted.stdout
    assert "was cut when it was printed" in pasted.stderr

    # A prefix several runs share lists them, and refuses to guess.
    other = started_run(stepline, endpoint, "test/long")
    ambiguous = stepline("runs", "show", f"{LONG_WORKFLOW}-", *at, check=False)
    assert ambiguous.returncode == 2
    assert "give more of the id" in ambiguous.stderr
    assert run_id in ambiguous.stderr and other in ambiguous.stderr

    # A cut id that matches nothing says what '…' means.
    missing = stepline("runs", "show", "no-such-run-3ee7…", *at, check=False)
    assert missing.returncode == 3
    assert "was cut when it was printed" in missing.stderr and "runs list" in missing.stderr

    # cancel and replay take prefixes too.
    nap = started_run(stepline, endpoint, "test/nap")
    eventually(lambda: status_of(stepline, endpoint, nap) == "SLEEPING")
    cancelled = json.loads(stepline("runs", "cancel", nap[:-6], *at, "--json").stdout)
    assert cancelled == {"run_id": nap, "cancelled": True, "status": "CANCELLED"}
    replay = json.loads(stepline("runs", "replay", nap[:-6], "--app", APP, *at, "--json").stdout)
    assert replay["replay_of"] == nap


def test_status_is_accepted_in_any_case(stepline, endpoint, long_run):
    for spelling in ("completed", "Completed", "COMPLETED"):
        listed = stepline("runs", "list", "--status", spelling, "--endpoint", endpoint, "--json")
        runs = json.loads(listed.stdout)
        assert long_run in {run["run_id"] for run in runs}
        assert {run["status"] for run in runs} == {"COMPLETED"}


def test_version():
    result = subprocess.run(
        [sys.executable, "-m", "infra.local.cli", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    from importlib.metadata import version

    assert result.stdout.strip() == f"stepline {version('stepline')}"


# -- what runs show says --------------------------------------------------------------------


def test_runs_show_prints_the_tracebacks_of_a_failed_step_and_run(stepline, endpoint, test_dir):
    (test_dir / "decline-charges").touch()
    try:
        run_id = started_run(stepline, endpoint, "test/checkout")
        eventually(lambda: status_of(stepline, endpoint, run_id) == "FAILED")
    finally:
        (test_dir / "decline-charges").unlink()
    shown = stepline("runs", "show", run_id, "--endpoint", endpoint).stdout
    step_part, _, run_part = shown.partition("traceback of the run's error")
    assert "traceback of step charge (FAILED)" in step_part
    # The step's: where the step's code raised.
    assert "Traceback (most recent call last)" in step_part
    assert 'raise NonRetriableError("card declined")' in step_part
    # The run's: where the workflow let the step's failure through.
    assert 'ctx.step.run("charge", charge)' in run_part
    assert "StepError: step 'charge' failed" in run_part


def test_runs_show_names_the_step_a_running_run_is_executing(stepline, endpoint, test_dir):
    release = test_dir / "release"
    release.unlink(missing_ok=True)
    run_id = started_run(stepline, endpoint, "test/hold")
    at = ("--endpoint", endpoint)

    def running() -> dict[str, Any] | None:
        shown = json.loads(stepline("runs", "show", run_id, *at, "--json").stdout)
        if shown["run"]["status"] == "RUNNING" and [s["id"] for s in shown["steps"]] == ["first"]:
            return dict(shown["running"])
        return None

    try:
        now = eventually(running, timeout=30)
        assert now["number"] == 2 and now["after"] == "first"
        assert now["since"] and now["lease_expires_at"]
        timeline = stepline("runs", "show", run_id, *at).stdout
        assert "RUNNING" in timeline
        assert "now running: step #2, the one after 'first', is running" in timeline
    finally:
        release.touch()
    eventually(lambda: status_of(stepline, endpoint, run_id) == "COMPLETED")
    done = json.loads(stepline("runs", "show", run_id, *at, "--json").stdout)
    assert done["running"] is None and done["run"]["output"] == "released"


# -- what send says -------------------------------------------------------------------------


def test_send_says_which_runs_it_started_or_why_it_started_none(stepline, endpoint):
    at = ("--endpoint", endpoint)

    started = stepline("send", "test/quick", "--data", '{"name": "ann"}', *at).stdout
    [run_id] = re.findall(r"started run (quick-\S+)", started)
    eventually(lambda: status_of(stepline, endpoint, run_id) == "COMPLETED")

    # A name no workflow uses is not routed to Stepline: send says so from the bus's rules
    # at once, with the names the app does use, to spot a typo.
    unknown = stepline("send", "test/nobody-listens", *at).stdout
    assert (
        "started nothing: no rule of stack 'stepline' routes events named "
        "'test/nobody-listens' to Stepline" in unknown
    )
    assert "test/quick" in unknown

    unmatched = stepline("send", "test/pro", "--data", '{"plan": "free"}', *at).stdout
    assert (
        "started nothing: pro-only: trigger condition not met: event.data.plan == 'pro'"
        in unmatched
    )

    first = stepline("send", "test/quick", "--id", "order-7", "--data", '{"name": "b"}', *at)
    [dup_run] = re.findall(r"started run (quick-\S+)", first.stdout)
    again = stepline("send", "test/quick", "--id", "order-7", "--data", '{"name": "b"}', *at)
    assert (
        f"started nothing new: event id 'order-7' is a duplicate; it had already started run "
        f"{dup_run}" in again.stdout
    )

    as_json = send(stepline, endpoint, "test/pro", "--data", '{"plan": "pro"}')
    assert as_json["processed"] is True
    [pro_run] = as_json["outcome"]["started"]
    assert pro_run.startswith("pro-only-") and as_json["summary"] == f"started run {pro_run}"


def test_send_says_when_no_worker_processed_the_event(tmp_path):
    with moto_server(tmp_path) as endpoint:
        session = boto3.session.Session(
            region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        )
        settings = Settings(region="us-east-1", endpoint_url=endpoint)
        create_resources(Clients(settings, session), "stepline")
        env = cli_env(tmp_path)
        command = [
            sys.executable,
            "-m",
            "infra.local.cli",
            "send",
            "test/quick",
            "--endpoint",
            endpoint,
        ]

        waited = subprocess.run(
            [*command, "--timeout", "1"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert waited.returncode == 0, waited.stderr
        assert "sent test/quick" in waited.stdout
        assert "no worker has processed event" in waited.stderr
        assert "Is `stepline dev` (or `stepline worker`) running" in waited.stderr

        skipped = subprocess.run(
            [*command, "--no-wait"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert skipped.returncode == 0 and "sent test/quick" in skipped.stdout
        assert "no worker" not in skipped.stderr

        # Whoever may only send events still sends them (the table is not readable here).
        session.client("dynamodb", endpoint_url=endpoint).delete_table(TableName="stepline")
        blind = subprocess.run(
            [*command, "--id", "order-9"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert blind.returncode == 0 and "sent test/quick (order-9)" in blind.stdout
        assert "the event was sent, but what it started cannot be read" in blind.stderr
