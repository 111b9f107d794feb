"""The wall clock, behind the Clock port (only infra/ and handlers/ may read it)."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def random(self) -> float:
        return random.random()

    def monotonic(self) -> float:
        return time.monotonic()
