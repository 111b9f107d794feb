"""The dashboard in a real headless browser (Debian's chromium driven by Playwright), as a
person uses it: a `stepline dev` with runs in several states, the runs page filtered, a
failed run's timeline and traceback, pause, resume and cancel from a run's page, each
checked in DynamoDB, and a new run appearing on the open page by itself.

Screenshots are kept in `STEPLINE_SCREENSHOTS` (default: a `stepline-screenshots` folder
in the system's temporary folder), never in the repository. `.ci/run` installs chromium
and sets `STEPLINE_REQUIRE_BROWSER=1`, so there a missing browser fails the test instead
of skipping it. No fixed waits: every step waits for what the page shows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import APP, ROOT, Process, cli_env, eventually, free_port
from tests.test_operator_cli import stored_status

CHROMIUM = os.environ.get("STEPLINE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(
    os.environ.get("STEPLINE_SCREENSHOTS") or Path(tempfile.gettempdir()) / "stepline-screenshots"
)


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _browser_missing()
    if missing:
        if os.environ.get("STEPLINE_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=ARGS,
        )
        try:
            yield launched
        finally:
            launched.close()


def cli(test_dir: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "infra.local.cli", *args],
        cwd=ROOT,
        env=cli_env(test_dir),
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def send(test_dir: Path, endpoint: str, name: str, data: str = "{}") -> str:
    sent = json.loads(cli(test_dir, "send", name, "--data", data, "--endpoint", endpoint, "--json"))
    [run_id] = sent["outcome"]["started"]
    return str(run_id)


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.timeout(300)
def test_a_person_filters_runs_reads_a_failure_and_pauses_resumes_and_cancels_a_run(
    browser, tmp_path
):
    ui_port = free_port()
    began = time.monotonic()
    dev = Process(
        [
            sys.executable,
            "-m",
            "infra.local.cli",
            "dev",
            "--app",
            APP,
            "--port",
            str(free_port()),
            "--ui-port",
            str(ui_port),
        ],
        cli_env(tmp_path),
    )
    try:
        dev.wait_for("Press Ctrl-C to stop", timeout=60)
        endpoint = re.search(r"endpoint\s+(http://\S+)", dev.output).group(1)
        dashboard = re.search(r"dashboard\s+(http://\S+)", dev.output).group(1)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # Every wait below waits for what the page shows; on a busy machine that can be slow.
        page.set_default_timeout(60_000)

        # The dashboard of a fresh dev server shows a new run by itself.
        page.goto(f"{dashboard}/runs")
        first = send(tmp_path, endpoint, "test/quick", '{"name": "<i>ann</i>"}')
        page.locator(f'tr[data-run="{first}"]').wait_for()
        shown_after = time.monotonic() - began
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / "timing.txt").write_text(
            f"stepline dev started to the dashboard showing a new run: {shown_after:.1f} s\n"
        )
        sys.stderr.write(f"\n[dashboard] dev start to a new run on the page: {shown_after:.1f} s\n")

        # GIVEN runs in several states
        nap = send(tmp_path, endpoint, "test/nap")
        (tmp_path / "decline-charges").touch()
        failed = send(tmp_path, endpoint, "test/checkout")
        eventually(lambda: stored_status(endpoint, failed) == "FAILED")
        eventually(lambda: stored_status(endpoint, nap) == "SLEEPING")
        for run_id in (nap, failed):
            page.locator(f'tr[data-run="{run_id}"]').wait_for()
        assert page.locator("tr[data-run]").count() == 3
        assert "<i>ann</i>" not in page.content()  # run data is escaped, not markup
        shot(page, "1-runs")

        # WHEN the person filters on failed runs
        page.get_by_label("failed").check()
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(r"status=FAILED"))
        # THEN only the failed run is listed
        assert page.locator("tr[data-run]").all_inner_texts()[0].startswith(failed)
        assert page.locator("tr[data-run]").count() == 1
        shot(page, "2-runs-failed")

        # WHEN they open it, THEN they see its timeline and the failed step's traceback
        page.get_by_role("link", name=failed).click()
        page.wait_for_url(f"**/runs/{failed}")
        assert page.locator("table.timeline tr.step").count() == 2
        assert page.locator(".bar.attempt-failed").count() == 1
        traceback = page.locator("pre.traceback").first
        assert "Traceback (most recent call last)" in traceback.inner_text()
        assert "card declined" in page.locator("article.stepdetail").nth(1).inner_text()
        shot(page, "3-failed-run")

        # WHEN they open the sleeping run and pause it
        page.goto(f"{dashboard}/runs/{nap}")
        assert "sleeping until" in page.locator("section.waits").inner_text()
        page.get_by_role("button", name="Pause").click()
        # THEN the page and DynamoDB say PAUSED
        page.locator("#run-status", has_text="PAUSED").wait_for()
        assert stored_status(endpoint, nap) == "PAUSED"
        shot(page, "4-paused")
        # WHEN they resume it, THEN it sleeps again
        page.get_by_role("button", name="Resume").click()
        page.locator("#run-status", has_text="SLEEPING").wait_for()
        assert stored_status(endpoint, nap) == "SLEEPING"
        # WHEN they cancel it, THEN it is cancelled
        page.get_by_role("button", name="Cancel").click()
        page.locator("#run-status", has_text="CANCELLED").wait_for()
        assert stored_status(endpoint, nap) == "CANCELLED"
        shot(page, "5-cancelled")

        # The other pages open, each showing what it is for.
        page.goto(f"{dashboard}/events")
        page.locator("table.events tbody tr").first.wait_for()
        assert f"started {first}" in page.locator("table.events").inner_text().replace("\n", " ")
        shot(page, "6-events")
        page.goto(f"{dashboard}/workflows")
        assert "failed 1" in page.locator('tr[data-workflow="checkout"]').inner_text()
        shot(page, "7-workflows")
        page.goto(f"{dashboard}/dead-letters")
        assert page.locator("article.dlq").count() == 2
        shot(page, "8-dead-letters")
        page.close()
    finally:
        if dev.popen.poll() is None:
            dev.interrupt()
        dev.close()
