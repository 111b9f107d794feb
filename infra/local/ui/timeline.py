"""The run page's timeline: one row per step, one bar per attempt, sleep and wait.

Bars are placed on the run's span (its creation to its end, or to now while it goes
on) as percentages, so the page needs no script to draw them. A retried step has a bar
for each failed attempt it kept and one for its last (from the previous failure, so it
includes the backoff: a step records only when its first attempt started); a sleep's bar runs to its wake
time, a wait's to its event (or its timeout, or now while it waits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.ports import LoadedRun
from engine.views import StepView, history_of, running_step

_MIN_WIDTH = 0.6


@dataclass(frozen=True)
class Bar:
    left: float
    width: float
    kind: str  # attempt-ok | attempt-failed | sleep | wait | running
    label: str


@dataclass
class StepRow:
    view: StepView
    bars: list[Bar] = field(default_factory=list)

    @property
    def output_json(self) -> str | None:
        return None if self.view.output is None else pretty(self.view.output)


@dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    rows: list[StepRow]
    running: str | None

    @property
    def span_label(self) -> str:
        return seconds(self.end - self.start)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def seconds(delta: Any) -> str:
    total = delta.total_seconds()
    if total < 1:
        return f"{total * 1000:.0f} ms"
    if total < 120:
        return f"{total:.1f} s"
    if total < 7200:
        return f"{total / 60:.1f} min"
    if total < 172_800:
        return f"{total / 3600:.1f} h"
    return f"{total / 86_400:.1f} d"


def build(loaded: LoadedRun, now: datetime) -> Timeline:
    run = loaded.run
    steps = history_of(loaded)
    start = run.created_at
    ends = [run.ended_at or now]
    for step in steps:
        ends.extend(t for t in (step.ended_at, step.wake_at) if t is not None and t.year > 1970)
    end = max(ends)
    if run.status.terminal and run.ended_at is not None:
        end = max(run.ended_at, *(s.ended_at for s in steps if s.ended_at is not None), start)
    span = max((end - start).total_seconds(), 0.001)

    def bar(begin: datetime | None, finish: datetime | None, kind: str, label: str) -> Bar | None:
        if begin is None:
            return None
        finish = finish or now
        left = max(0.0, min(100.0, (begin - start).total_seconds() / span * 100))
        width = max(_MIN_WIDTH, (finish - begin).total_seconds() / span * 100)
        return Bar(
            left=round(left, 3),
            width=round(min(width, 100.0 - left + _MIN_WIDTH), 3),
            kind=kind,
            label=label,
        )

    rows = []
    for step in steps:
        row = StepRow(step)
        for failure in step.failures:
            made = bar(
                failure.started_at,
                failure.ended_at,
                "attempt-failed",
                f"attempt {failure.attempt}: {failure.error.type}",
            )
            if made is not None:
                row.bars.append(made)
        if step.kind == "sleep":
            finish = step.wake_at if step.status != "CANCELLED" else step.ended_at
            made = bar(
                step.started_at,
                finish,
                "sleep",
                f"sleep until {step.wake_at:%H:%M:%S}" if step.wake_at else "sleep",
            )
        elif step.kind in ("wait_for_event", "invoke"):
            finish = step.ended_at or (None if run.status.terminal is False else run.ended_at)
            made = bar(step.started_at, finish, "wait", step.detail or "wait")
        else:
            failed = step.status in ("FAILED", "RETRYING")
            # A step records when its first attempt started; the last attempt began after
            # the previous one's failure (and its backoff).
            begin = step.failures[-1].ended_at if step.failures else step.started_at
            made = bar(
                begin,
                step.ended_at,
                "attempt-failed" if failed else "attempt-ok",
                f"attempt {step.attempts}: {step.status.lower()}",
            )
        if made is not None:
            row.bars.append(made)
        rows.append(row)
    running = running_step(loaded)
    return Timeline(
        start=start, end=end, rows=rows, running=running.describe() if running else None
    )
