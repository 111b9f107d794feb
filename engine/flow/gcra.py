"""The generic cell rate algorithm (GCRA) behind `RateLimit` and `Throttle`. Pure.

One number per key, the theoretical arrival time (TAT): runs are spaced an emission
interval `T = period / limit` apart (rounded up to the microsecond, so `limit` of them
never fit in less than `period`), and `burst` of them may start together (a tolerance of
`(burst - 1) * T`). A rate limit asks "may a run start now?" and drops the event if not;
a throttle asks "when may it start?" and reserves that instant for it, so runs start in
the order they reached the throttle and no period is left unused while a backlog waits.
Times are integers of microseconds since the epoch, as stored.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from engine.model import EPOCH


def micros(instant: datetime) -> int:
    return (instant - EPOCH) // timedelta(microseconds=1)


def instant(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def interval(period: timedelta, limit: int) -> int:
    """The emission interval in microseconds, rounded up."""
    return math.ceil((period // timedelta(microseconds=1)) / limit)


def admit(tat: int | None, now: int, *, period: timedelta, limit: int, burst: int) -> int | None:
    """A rate limit: the new TAT if a run may start at `now`, None if it may not."""
    step = interval(period, limit)
    base = now if tat is None else max(tat, now)
    if base - now > (burst - 1) * step:
        return None
    return base + step


def reserve(
    tat: int | None, now: int, *, period: timedelta, limit: int, burst: int
) -> tuple[int, int]:
    """A throttle: (when the run may start, the new TAT), reserving that start for it."""
    step = interval(period, limit)
    base = now if tat is None else max(tat, now)
    return max(now, base - (burst - 1) * step), base + step


def retry_at(tat: int, now: int, *, period: timedelta, limit: int, burst: int) -> int:
    """When a rate-limited key next admits a run (for the event's record)."""
    step = interval(period, limit)
    return max(now, tat - (burst - 1) * step)
