"""Rendering runs for people: the audit-trail timeline and run tables (rich).

Used by the demo and by `stepline runs show/list`. Output previews are cut to a width;
`--json` on the CLI gives the full values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from engine.views import RunView, StepView

STATUS_STYLE = {
    "COMPLETED": "green",
    "FAILED": "red",
    "CANCELLED": "magenta",
    "RUNNING": "cyan",
    "QUEUED": "cyan",
    "SLEEPING": "yellow",
    "WAITING": "yellow",
    "RETRYING": "yellow",
    "TIMED_OUT": "bright_black",
}


def preview(value: Any, width: int = 60) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = max((end - start).total_seconds(), 0)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    delta = timedelta(seconds=round(seconds))
    days, rest = divmod(int(delta.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    text = "".join(parts) + (f"{secs}s" if secs or not any(parts) else "")
    return text


def when(instant: datetime | None) -> str:
    return instant.strftime("%Y-%m-%d %H:%M:%S") if instant else ""


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def timeline(run: RunView, steps: Iterable[StepView]) -> Panel:
    """The audit trail of one run: every step, attempt, sleep and wait, with times."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("#", "step", "kind", "status", "tries", "started", "took", "output / error"):
        table.add_column(column, overflow="fold" if column == "output / error" else "ellipsis")
    for number, step in enumerate(steps, start=1):
        outcome: Text | str
        if step.error is not None:
            outcome = Text(preview(str(step.error), 70), style="red")
        elif step.kind == "sleep":
            outcome = f"until {when(step.wake_at)}"
        elif step.kind == "wait_for_event" and step.status in ("WAITING", "TIMED_OUT"):
            outcome = f"{step.detail}; timeout {when(step.wake_at)}"
        elif step.kind == "invoke" and step.status == "WAITING":
            outcome = step.detail
        else:
            outcome = preview(step.output, 70)
        table.add_row(
            str(number),
            step.id,
            step.kind,
            _status(step.status),
            str(step.attempts) if step.kind in ("run", "send_event") else "",
            when(step.started_at),
            duration(step.started_at, step.ended_at),
            outcome,
        )
        for failure in step.failures:
            table.add_row(
                "",
                Text(f"  attempt {failure.attempt}", style="bright_black"),
                "",
                Text("failed", style="red"),
                "",
                when(failure.started_at),
                duration(failure.started_at, failure.ended_at),
                Text(preview(str(failure.error), 70), style="bright_black"),
            )
    header = Text.assemble(
        (run.workflow_id, "bold"),
        "  ",
        _status(run.status),
        f"  run {run.run_id}\n",
        f"event {run.event_name} ({run.event_id})  created {when(run.created_at)}",
        f"  ended {when(run.ended_at)}  took {duration(run.created_at, run.ended_at)}"
        if run.ended_at
        else "",
    )
    parts: list[Any] = [header, table]
    if run.status == "COMPLETED":
        parts.append(Text(f"output: {preview(run.output, 200)}", style="green"))
    elif run.error is not None:
        parts.append(Text(f"error: {run.error}", style="red"))
    elif run.wake_at is not None:
        parts.append(Text(f"next wake-up: {when(run.wake_at)}", style="yellow"))
    return Panel(Group(*parts), expand=False)


def runs_table(runs: Iterable[RunView]) -> Table:
    table = Table(header_style="bold")
    for column in ("run id", "workflow", "status", "event", "created", "updated", "next wake"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.run_id,
            run.workflow_id,
            _status(run.status),
            run.event_name,
            when(run.created_at),
            when(run.updated_at),
            when(run.wake_at) if run.wake_at and run.wake_at.year > 1970 else "",
        )
    return table


def console() -> Console:
    return Console(highlight=False, soft_wrap=False, width=160)
