"""`stepline check` and `stepline runs export`: histories replayed against new code before
a deploy, from exported files (the golden histories of the examples among them) or from
the runs in flight in the table; exit 1 when a run would fail."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from infra.local import LocalRuntime
from infra.local.cli import cli
from sdk import Event
from tests.conftest import START
from tests.golden_histories import FOLDER, record
from tests.test_cli import ROOT, cli_env
from tests.test_versioning import V1

GOLDEN = sorted(FOLDER.glob("*.json"))


def stepline(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.local.cli", *args],
        cwd=cwd,
        env=cli_env(cwd),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_golden_histories_of_the_examples_replay_on_the_examples():
    # GIVEN the examples' runs exported in flight and finished (tests/golden_histories.py)
    assert len(GOLDEN) == 10

    # WHEN a CI job checks them against the current examples
    checked = stepline("check", "--app", "examples:app", "--history", "tests/golden")

    # THEN every one replays
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "all 10 run(s) replay on the current code of app 'shop'" in checked.stdout


def test_histories_checked_against_an_app_without_their_workflows_are_listed_and_fail(tmp_path):
    # GIVEN freshly recorded histories of the examples (the recorder itself works)
    written = record(tmp_path)
    assert stepline("check", "--app", "examples:app", "--history", str(tmp_path)).returncode == 0

    # WHEN they are checked against an app that has none of their workflows
    checked = stepline(
        "check", "--app", "tests.test_versioning:V1", "--history", str(tmp_path), "--json"
    )

    # THEN each is listed as a run whose workflow is gone, and the exit code says so
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    assert report["checked"] == report["failing"] == len(written)
    assert {run["verdict"] for run in report["runs"]} == {"unknown-workflow"}
    assert any("'user-onboarding'" in run["message"] for run in report["runs"])


def test_export_a_run_in_flight_then_check_it_against_the_next_version(tmp_path, monkeypatch):
    runner = CliRunner()
    monkeypatch.setenv("STEPLINE_TABLE", "stepline")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with LocalRuntime(V1, start=START) as rt:
        # GIVEN a run asleep on v1, and a finished one
        [done] = rt.send(Event(name="user/signup", data={"user": "bob"}))
        rt.advance(timedelta(days=2))
        [asleep] = rt.send(Event(name="user/signup", data={"user": "ada"}))

        # WHEN its history is exported (by a unique start of its id)
        history = tmp_path / "run.json"
        exported = runner.invoke(cli, ["runs", "export", asleep[:-4], "--output", str(history)])
        assert exported.exit_code == 0, exported.output
        assert json.loads(history.read_text())["run"]["run_id"] == asleep

        # THEN the check accepts v2 with its patch and refuses v2 without, naming the step
        args = ["check", "--history", str(history), "--app"]
        patched = runner.invoke(cli, [*args, "tests.test_versioning:V2"])
        assert patched.exit_code == 0, patched.output
        unsafe = runner.invoke(cli, [*args, "tests.test_versioning:V2_UNSAFE"])
        assert unsafe.exit_code == 1
        assert f"FAIL {asleep} (welcome, SLEEPING, diverges)" in unsafe.output
        assert "the history recorded step 'welcome' (run) there" in unsafe.output
        assert "1 of 1 run(s) would fail" in unsafe.output

        # AND checked from the table, only the runs in flight are replayed
        table = runner.invoke(cli, ["check", "--app", "tests.test_versioning:V2_UNSAFE", "--json"])
        assert table.exit_code == 1, table.output
        report = json.loads(table.output)
        assert [run["run_id"] for run in report["runs"]] == [asleep]
        assert done not in table.output
