"""The run table and the timeline never cut an id, at every width from 20 to 250 columns,
and follow the width: no line is wider than it unless it is one field (an id) wider."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from rich.console import Console

from engine.model import AttemptFailure, ErrorInfo
from engine.views import RunningStep, RunView, StepView
from infra.local import render
from tests.conftest import START

WORKFLOW = "order-fulfilment-for-the-european-warehouses"
RUN_ID = f"{WORKFLOW}-3ee7b468c2ae1d6a501d8f00"
CHILD_ID = "billing-c2ac93878bed95830368b7da"
TRACE = 'Traceback (most recent call last):\n  File "app.py", line 9, in charge\nValueError: no\n'


def run_view(run_id: str = RUN_ID, status: str = "FAILED") -> RunView:
    return RunView(
        run_id=run_id,
        workflow_id=WORKFLOW,
        status=status,
        output=None,
        error=ErrorInfo(type="StepError", message="step 'charge' failed", traceback=TRACE)
        if status == "FAILED"
        else None,
        event_name="shop/order.placed",
        event_id="91c16ab7-e643-4957-9e43-ab714a8d0b11",
        created_at=START,
        updated_at=START,
        ended_at=START + timedelta(seconds=3),
        wake_at=None,
        parent_run_id=None,
    )


def steps() -> list[StepView]:
    error = ErrorInfo(type="ValueError", message="no " * 40, traceback=TRACE)
    return [
        StepView("reserve-stock-in-the-nearest-warehouse", "run", "COMPLETED", 1, {"sku": "tea"},
                 None, START, START),
        StepView("bill", "invoke", "COMPLETED", 0, {"paid": True}, None, START, START,
                 detail=f"child billing run {CHILD_ID}", child_run_id=CHILD_ID),
        StepView("charge", "run", "FAILED", 2, None, error, START, START,
                 failures=(AttemptFailure(attempt=1, error=error, started_at=START,
                                          ended_at=START),)),
    ]  # fmt: skip


def printed(renderable: object, width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False).print(renderable, crop=False)
    return out.getvalue()


def assert_ids_whole(text: str, *ids: str) -> None:
    for whole in ids:
        assert whole in text, text
        digest = whole.rsplit("-", 1)[1]
        for line in text.splitlines():
            if any(digest[i : i + 6] in line for i in range(len(digest) - 5)):
                assert whole in line, f"{whole} broken:\n{text}"
    for shown in re.findall(r"(\S{6,})…", text):
        assert not any(whole.startswith(shown) for whole in (*ids, WORKFLOW)), text


def assert_follows(text: str, width: int) -> None:
    for line in text.splitlines():
        assert len(line) <= width or "  " not in line.strip(), f"{len(line)} > {width}:\n{text}"


@pytest.mark.parametrize("width", range(20, 251, 3))
def test_ids_stay_whole_and_lines_follow_the_width(width):
    other = f"{WORKFLOW}-5d78b4d61efa4dd591146366"
    table = printed(render.runs_table([run_view(), run_view(other, "COMPLETED")]), width)
    assert_ids_whole(table, RUN_ID, other)
    assert_follows(table, width)

    running = RunningStep(number=4, after="charge", since=START, lease_expires_at=START)
    trail = printed(render.timeline(run_view(status="RUNNING"), steps(), running), width)
    assert_ids_whole(trail, RUN_ID, CHILD_ID)
    assert_follows(trail, width)
    assert "reserve-stock-in-the-nearest-warehouse" in trail  # a step id, whole
    assert "now running: step #4, the one after 'charge'" in " ".join(trail.split())

    failed = printed(render.timeline(run_view(), steps()), width)
    assert_ids_whole(failed, RUN_ID, CHILD_ID)
    assert_follows(failed, width)
    assert "traceback of step charge (FAILED):" in " ".join(failed.split())


def test_a_wide_console_gets_one_row_per_run():
    table = printed(render.runs_table([run_view()]), 250)
    assert any(RUN_ID in line and "FAILED" in line for line in table.splitlines())
