"""`Cron`: a schedule that starts runs, and its ticks in a time zone.

`@app.workflow("report", trigger=Cron("0 9 * * MON", tz="Europe/Paris"))` starts one
run per tick, whose event is named `stepline/cron` (`CRON_EVENT`) with data
`{"cron": "0 9 * * MON", "tick": "2026-03-02T09:00:00+01:00"}` (the tick in the cron's
own time zone). A Cron may stand alone or in a list with event triggers.

The expression is standard 5-field cron (minute, hour, day of month, month, day of
week), as Inngest and crontab take it, parsed by `cronsim`: lists, ranges, steps, names
(JAN, MON), `L`, `LW` and `#`. When both day fields are restricted a day matching either
is a tick, as in crontab. EventBridge's 6-field form (`cron(0 9 * * ? *)`) is refused with
its 5-field equivalent where there is one: its day-of-week numbers differ (1 is Sunday).

Ticks are local wall-clock times of the zone, with EventBridge Scheduler's rules for
daylight-saving changes, so local firing and a deployment agree: a wall time that does
not exist (the hour skipped when clocks go forward) is no tick, and one that happens
twice (clocks go back) ticks once, at its first occurrence. `tick_of(instant)` also
accepts the second occurrence and names the same tick, so a tick delivered at either
starts the same run.

Everything here is a pure function of the expression, the zone and the instants given:
no clock is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sdk._errors import WorkflowDefinitionError

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

# cronsim and zoneinfo are imported where a Cron needs them, not with the SDK: together
# they cost a cold start tens of milliseconds, which apps without Crons need not pay.

#: The name of the event a Cron's tick starts a run with; its data holds `cron` (the
#: expression) and `tick` (ISO 8601, in the cron's time zone).
CRON_EVENT = "stepline/cron"

_FIELDS = "minute hour day-of-month month day-of-week"
_SCHEDULE_PREFIXES = ("cron(", "rate(", "at(")
_CRON_FIELD = re.compile(r"[0-9*?/,#LW-]+|[A-Za-z]{3}([-,][A-Za-z]{3})*")
# Ticks are searched this far ahead at most (cronsim itself gives up after 50 years).
_MAX_CANDIDATES = 100_000


@dataclass(frozen=True, init=False)
class Cron:
    """Start a run at every tick of a 5-field cron `expression` in time zone `tz`.

    `Cron("*/15 * * * *")`, `Cron("0 9 * * MON-FRI", tz="America/New_York")`. The
    expression is checked when the workflow is declared (WorkflowDefinitionError).
    """

    expression: str
    tz: str

    def __init__(self, expression: str, tz: str = "UTC") -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from cronsim import CronSim, CronSimError

        what = f"Cron({expression!r})"
        if not isinstance(expression, str) or not expression.strip():
            raise WorkflowDefinitionError(f"{what}: the expression must be a non-empty string")
        text = " ".join(expression.split())
        aws = _aws_form(text)
        if aws is not None or len(text.split(" ")) != 5:
            raise WorkflowDefinitionError(f"{what}: {_five_fields_hint(text)}")
        try:
            next(CronSim(text, datetime(2000, 1, 1)))  # noqa: DTZ001 - wall-clock time
        except CronSimError as error:
            raise WorkflowDefinitionError(
                f"{what} is not a valid cron expression ({error}). Use 5 fields: {_FIELDS}; "
                "minute 0-59, hour 0-23, day-of-month 1-31 (or L), month 1-12 or JAN-DEC, "
                "day-of-week 0-7 or SUN-SAT (0 and 7 are Sunday)"
            ) from None
        except StopIteration:
            raise WorkflowDefinitionError(f"{what} never ticks (no date matches it)") from None
        if not isinstance(tz, str) or not tz:
            raise WorkflowDefinitionError(f"{what}: tz must be an IANA time zone name")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise WorkflowDefinitionError(
                f"{what}: unknown time zone {tz!r}; use an IANA name such as 'UTC', "
                "'Europe/Paris' or 'America/New_York'"
            ) from None
        object.__setattr__(self, "expression", text)
        object.__setattr__(self, "tz", tz)

    def __repr__(self) -> str:
        zone = "" if self.tz == "UTC" else f", tz={self.tz!r}"
        return f"Cron({self.expression!r}{zone})"

    @property
    def zone(self) -> ZoneInfo:
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.tz)

    def next_tick(self, after: datetime) -> datetime | None:
        """The first tick strictly after `after` (an aware instant), in UTC."""
        return next(self.ticks(after), None)

    def next_ticks(self, after: datetime, count: int = 3) -> list[datetime]:
        """The next `count` ticks after `after`, in UTC (for listings)."""
        found: list[datetime] = []
        for tick in self.ticks(after):
            found.append(tick)
            if len(found) >= count:
                break
        return found

    def ticks(self, after: datetime) -> Iterator[datetime]:
        """Every tick strictly after `after`, in order, as UTC instants."""
        from cronsim import CronSim

        zone = self.zone
        start = _aware(after).astimezone(zone).replace(tzinfo=None, fold=0)
        candidates = CronSim(self.expression, start)
        for _ in range(_MAX_CANDIDATES):
            try:
                wall = next(candidates)
            except StopIteration:
                return
            instant = _existing(wall, zone)
            if instant is not None and instant > after:
                yield instant

    def tick_of(self, instant: datetime) -> datetime | None:
        """The tick `instant` is (its first occurrence, in UTC), or None if it is none.

        A wall time that happens twice is the same tick at either occurrence.
        """
        from cronsim import CronSim

        zone = self.zone
        wall = _aware(instant).astimezone(zone).replace(tzinfo=None, fold=0)
        if wall.microsecond or wall.second:
            return None
        try:
            candidate = next(CronSim(self.expression, wall - timedelta(seconds=1)))
        except StopIteration:
            return None
        return _existing(wall, zone) if candidate == wall else None

    def tick_text(self, tick: datetime) -> str:
        """A tick as the event data carries it: ISO 8601 in the cron's time zone."""
        return tick.astimezone(self.zone).isoformat()

    def describe(self) -> str:
        """The schedule in words, e.g. "At 09:00 on Monday" (plus the zone if not UTC)."""
        from cronsim import CronSim

        words = CronSim(self.expression, datetime(2000, 1, 1)).explain()  # noqa: DTZ001
        return words if self.tz == "UTC" else f"{words} ({self.tz})"


def _aware(instant: datetime) -> datetime:
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def _existing(wall: datetime, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a local wall time at its first occurrence; None if it is skipped."""
    local = wall.replace(tzinfo=zone, fold=0)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        return None  # clocks jumped over it
    return instant


def looks_like_schedule(text: str) -> bool:
    """Whether an event name given as a trigger is really a schedule expression."""
    stripped = text.strip()
    if stripped.lower().startswith(_SCHEDULE_PREFIXES):
        return True
    fields = stripped.split()
    return (
        5 <= len(fields) <= 7
        and all(_CRON_FIELD.fullmatch(field) for field in fields)
        and any(char.isdigit() or char == "*" for char in stripped)
    )


def schedule_refusal(text: str) -> str:
    """Why a schedule given where an event name belongs is refused, and what to write."""
    return (
        f"{text!r} is a schedule, not an event name (a string trigger names an event). "
        + _five_fields_hint(" ".join(text.split()))
    )


def _aws_form(text: str) -> list[str] | None:
    """The fields of an EventBridge `cron(...)` expression (or None if it is not one)."""
    lowered = text.lower()
    if lowered.startswith("cron(") and text.endswith(")"):
        return text[5:-1].split()
    if lowered.startswith(_SCHEDULE_PREFIXES):
        return []
    return None


def _five_fields_hint(text: str) -> str:
    advice = (
        f'For a schedule use trigger=Cron("0 9 * * *", tz="UTC"): 5 fields, {_FIELDS} '
        "(no seconds, no year)."
    )
    fields = _aws_form(text)
    if fields is None:
        fields = text.split(" ")
    if len(fields) == 6 and "?" in (fields[2], fields[4]) and fields[5] in ("*", "?"):
        day_of_month, day_of_week = fields[2], fields[4]
        # EventBridge numbers days of the week 1-7 from Sunday, cron 0-6: only names
        # (or none) carry over as they are.
        if not any(char.isdigit() for char in day_of_week):
            minute, hour, _, month, _, _ = fields
            dom = "*" if day_of_month == "?" else day_of_month
            dow = "*" if day_of_week == "?" else day_of_week
            five = " ".join((minute, hour, dom, month, dow))
            return f'{advice} This EventBridge expression is Cron("{five}").'
        return f"{advice} EventBridge's '?' and its day-of-week numbers (1 = Sunday) differ."
    if "?" in fields:
        return f"{advice} '?' is EventBridge's syntax; cron uses '*'."
    return advice
