"""The README's snippets for Cron triggers and evolving workflows run as written (the
inventory of every snippet is tests/test_readme.py's)."""

from __future__ import annotations

import subprocess
import sys

from tests.test_cli import ROOT, cli_env
from tests.test_readme import bash, python_block, shell_command


def run_python(name: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", python_block(name)],
        cwd=ROOT,
        env=cli_env(ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_cron_snippet_fires_two_weeks_of_monday_ticks_in_paris_time():
    assert run_python("cron") == [
        "['digest for 2026-03-02T09:00:00+01:00', 'digest for 2026-03-09T09:00:00+01:00']",
        "['2026-03-16T08:00:00+00:00', '2026-03-23T08:00:00+00:00']",
    ]


def test_the_patched_snippet_keeps_the_old_run_on_email_and_sends_the_new_one_by_sms():
    assert run_python("patched") == ["email sms"]


def test_the_check_command_passes_on_the_golden_histories():
    result = bash(shell_command(".venv/bin/stepline check --app examples:app"), cli_env(ROOT))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 10 run(s) replay" in result.stdout
