"""The views of runs for people: the audit-trail timeline and the runs table.

Built on the layout of infra/local/render/layout.py; `show` prints one for the CLI.
Output previews are cut to a width (`--json` on the CLI gives the full values);
tracebacks are folded, never cut.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.panel import Panel
from rich.text import Text

from engine.settings import HISTORY_WARNING_STEPS
from engine.views import RunningStep, RunView, StepView
from infra.local.render.layout import Column, Fields, Rows

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
    "STARTED": "cyan",
    "PAUSED": "blue",
}

# A map (or parallel) shows this many items; the rest are summed up in one row.
ITEMS_SHOWN = 20


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


_STEP_COLUMNS = (
    Column("#", lead=True),
    Column("step", lead=True),
    Column("kind"),
    Column("status", lead=True),
    Column("tries", drop=2),
    Column("started", drop=1),
    Column("took"),
    Column("output / error", whole=False),
)


def _outcome(step: StepView) -> Text:
    if step.error is not None:
        return Text(preview(str(step.error), 70), style="red")
    if step.kind == "sleep":
        return Text(f"until {when(step.wake_at)}")
    if step.kind == "wait_for_event" and step.status in ("WAITING", "TIMED_OUT"):
        return Text(f"{step.detail}; timeout {when(step.wake_at)}")
    if step.kind == "invoke" and step.status == "WAITING":
        return Text(step.detail)
    if step.kind == "callback":
        if step.status == "WAITING":
            # Its id, too long for a column, is printed whole below the table.
            return Text(
                f"waiting for its id; {step.detail}" if step.detail else "waiting for its id"
            )
        return Text(preview(step.output, 70) + (f" ({step.detail})" if step.detail else ""))
    if step.kind in ("map", "parallel", "wait_for_condition") and step.detail:
        return Text(step.detail)
    return Text(preview(step.output, 70))


def _collapsed(steps: Iterable[StepView]) -> list[tuple[int, StepView] | str]:
    """The steps to show, with their numbers in the audit trail: past ITEMS_SHOWN items
    of a batch, one line sums the rest up."""
    shown: list[tuple[int, StepView] | str] = []
    batches: dict[str, int] = {}  # a batch's position -> items seen
    hidden: dict[str, dict[str, int]] = {}
    for number, step in enumerate(steps, start=1):
        parts = step.position.split(".")
        prefixes = (".".join(parts[:size]) for size in range(1, len(parts)))
        batch = next((prefix for prefix in prefixes if prefix in batches), None)
        if step.kind in ("map", "parallel"):
            batches[step.position] = 0
        if batch is not None and len(parts) == batch.count(".") + 2:
            batches[batch] += 1  # an item's (or branch's) own record
        if batch is not None and batches[batch] > ITEMS_SHOWN:
            if len(parts) == batch.count(".") + 2:
                counts = hidden.setdefault(batch, {})
                counts[step.status] = counts.get(step.status, 0) + 1
            continue
        shown.extend(_flush(hidden, keep_under=step.position))
        shown.append((number, step))
    shown.extend(_flush(hidden, keep_under=None))
    return shown


def _flush(hidden: dict[str, dict[str, int]], keep_under: str | None) -> list[str]:
    lines = []
    for batch in list(hidden):
        if keep_under is not None and keep_under.startswith(batch + "."):
            continue
        counts = hidden.pop(batch)
        total = sum(counts.values())
        text = ", ".join(f"{count} {status.lower()}" for status, count in sorted(counts.items()))
        lines.append(f"… {total:,} more items ({text}); --json lists every step")
    return lines


def _step_rows(steps: Iterable[StepView], running: RunningStep | None) -> Rows:
    rows: list[list[Text]] = []
    sub_rows: list[bool] = []
    for entry in _collapsed(steps):
        if isinstance(entry, str):
            rows.append(
                [Text(""), Text(entry, style="bright_black"), *(Text("") for _ in range(6))]
            )
            sub_rows.append(True)
            continue
        number, step = entry
        outcome: Text
        if running is not None and running.step_id == step.id and number == running.number:
            outcome = Text(f"attempt {running.attempt} in progress", style="cyan")
            status = "RUNNING"
        else:
            status = step.status
            outcome = _outcome(step)
        rows.append(
            [
                Text(str(number)),
                Text("  " * step.depth + step.id),
                Text(step.kind),
                _status(status),
                Text(
                    str(step.attempts)
                    if step.kind in ("run", "send_event", "wait_for_condition")
                    else ""
                ),
                Text(when(step.started_at)),
                Text(duration(step.started_at, step.ended_at)),
                outcome,
            ]
        )
        sub_rows.append(False)
        for failure in step.failures:
            rows.append(
                [
                    Text(""),
                    Text(f"attempt {failure.attempt}", style="bright_black"),
                    Text(""),
                    Text("failed", style="red"),
                    Text(""),
                    Text(when(failure.started_at)),
                    Text(duration(failure.started_at, failure.ended_at)),
                    Text(preview(str(failure.error), 70), style="bright_black"),
                ]
            )
            sub_rows.append(True)
    if running is not None and running.step_id is None:
        rows.append(
            [
                Text(str(running.number)),
                Text("(next step)", style="cyan"),
                Text(""),
                _status("RUNNING"),
                Text(""),
                Text(when(running.since)),
                Text(""),
                Text(
                    f"in progress, after {running.after!r}" if running.after else "in progress",
                    style="cyan",
                ),
            ]
        )
        sub_rows.append(False)
    return Rows(_STEP_COLUMNS, rows, boxed=False, sub_rows=sub_rows)


def _tracebacks(run: RunView, steps: Sequence[StepView]) -> list[RenderableType]:
    """The stored traceback of each failed step and of the run's error, each once."""
    shown: set[str] = set()
    parts: list[RenderableType] = []
    for step in steps:
        trace = step.error.traceback if step.error is not None else None
        if trace and trace not in shown:
            shown.add(trace)
            parts.append(Fields(Text(f"traceback of step {step.id} ({step.status}):", "bold")))
            parts.append(Text(trace.rstrip(), style="red", overflow="fold"))
    trace = run.error.traceback if run.error is not None else None
    if trace and trace not in shown:
        title = "traceback of the run's error:"
        if shown:
            # A step's failure raised in the workflow: its chained part is shown above.
            last = _last_section(trace)
            if last != trace.strip("\n"):
                title = "traceback of the run's error (the step's failure above caused it):"
            trace = last
        parts.append(Text(title, "bold"))
        parts.append(Text(trace.rstrip(), style="red", overflow="fold"))
    return parts


_CHAINED = (
    "\nDuring handling of the above exception, another exception occurred:\n",
    "\nThe above exception was the direct cause of the following exception:\n",
)


def _last_section(trace: str) -> str:
    """The last exception of a chained traceback."""
    cut = max(trace.rfind(marker) + len(marker) if marker in trace else 0 for marker in _CHAINED)
    return trace[cut:].strip("\n")


class Timeline:
    """The audit trail of one run: every step, attempt, sleep and wait, with times."""

    def __init__(
        self, run: RunView, steps: Iterable[StepView], running: RunningStep | None = None
    ) -> None:
        self.run = run
        self.steps = list(steps)
        self.running = running

    def _header(self) -> list[Fields]:
        run = self.run
        lines = [
            Fields(Text(run.workflow_id, "bold"), _status(run.status), f"run {run.run_id}"),
            Fields(
                f"event {run.event_name} ({run.event_id})",
                f"created {when(run.created_at)}",
                f"ended {when(run.ended_at)}" if run.ended_at else "",
                f"took {duration(run.created_at, run.ended_at)}" if run.ended_at else "",
            ),
        ]
        if run.replay_of:
            lines.append(
                Fields(
                    f"replay of {run.replay_of}",
                    f"from step {run.replay_from}" if run.replay_from else "",
                )
            )
        if run.parent_run_id:
            lines.append(Fields(f"child of run {run.parent_run_id}"))
        if run.continued_from:
            lines.append(Fields(f"continues run {run.continued_from}"))
        if run.continued_as:
            lines.append(Fields(f"continued as new run {run.continued_as}"))
        if run.tenant_id:
            lines.append(Fields(f"tenant {run.tenant_id}"))
        return lines

    def _footer(self) -> list[RenderableType]:
        run = self.run
        parts: list[RenderableType] = []
        if run.status == "COMPLETED":
            parts.append(Text(f"output: {preview(run.output, 200)}", style="green"))
        elif run.error is not None:
            parts.append(Text(f"error: {run.error}", style="red", overflow="fold"))
        elif self.running is not None:
            parts.append(Fields(Text(f"now running: {self.running.describe()}", "cyan")))
        elif run.waiting is not None:
            parts.append(Text(f"not started yet: {run.waiting}", style="cyan", overflow="fold"))
        elif run.wake_at is not None:
            parts.append(Text(f"next wake-up: {when(run.wake_at)}", style="yellow"))
        if len(self.steps) >= HISTORY_WARNING_STEPS:
            parts.append(
                Text(
                    f"this run has {len(self.steps):,} recorded steps: every resume loads "
                    "and replays them all; carry long-lived work on with "
                    "ctx.continue_as_new(data)",
                    style="yellow",
                    overflow="fold",
                )
            )
        for step in self.steps:
            if step.child_run_id:
                parts.append(Fields(f"step {step.id} invoked run {step.child_run_id}"))
            if step.callback_id and step.status == "WAITING":
                parts.append(Fields(f"callback {step.id} is completed with id", step.callback_id))
        return parts + _tracebacks(run, self.steps)

    def _parts(self) -> tuple[list[Fields], Rows, list[RenderableType]]:
        return self._header(), _step_rows(self.steps, self.running), self._footer()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        header, rows, footer = self._parts()
        body = Group(*header, rows, *footer)
        # The frame only when the header fits in it whole and the steps as a table.
        inner = options.max_width - 4
        fits = Measurement.get(console, options, Group(*header)).maximum <= inner and (
            rows.layout(console, options.update_width(inner)) is not None
        )
        yield Panel(body, expand=False) if fits else body

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        header, rows, footer = self._parts()
        measured = Measurement.get(console, options, Group(*header, rows, *footer))
        return Measurement(measured.minimum, measured.maximum + 4)


def timeline(
    run: RunView, steps: Iterable[StepView], running: RunningStep | None = None
) -> Timeline:
    """The audit trail of one run (a rich renderable)."""
    return Timeline(run, steps, running)


_RUN_COLUMNS = (
    Column("run id", lead=True),
    Column("workflow"),
    Column("status", lead=True),
    Column("event"),
    Column("created"),
    Column("updated", drop=1),
    Column("next wake", drop=2),
)


def runs_table(runs: Iterable[RunView]) -> Rows:
    rows = [
        [
            Text(run.run_id),
            Text(run.workflow_id),
            _status(run.status),
            Text(run.event_name),
            Text(when(run.created_at)),
            Text(when(run.updated_at)),
            Text(when(run.wake_at) if run.wake_at and run.wake_at.year > 1970 else ""),
        ]
        for run in runs
    ]
    return Rows(_RUN_COLUMNS, rows, boxed=True)


def console() -> Console:
    """A console as wide as the terminal (or COLUMNS); 80 columns when piped."""
    return Console(highlight=False, soft_wrap=False)


def show(renderable: RenderableType, out: Console | None = None) -> None:
    """Print for the CLI: follow the terminal's width; piped (and with no COLUMNS), as wide
    as the content, so that each row stays one line for grep. Nothing is cropped."""
    out = out or console()
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        natural = Measurement.get(out, out.options.update_width(100_000), renderable).maximum
        out.width = max(natural, 80)
    out.print(renderable, crop=False)
