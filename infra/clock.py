"""The wall clock and the system's randomness, behind the Clock port (only infra/ and
handlers/ may read them)."""

from __future__ import annotations

import random
import secrets
import time
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def random(self) -> float:
        return random.random()

    def monotonic(self) -> float:
        return time.monotonic()

    def token(self) -> str:
        """128 bits from the operating system's CSPRNG."""
        return secrets.token_hex(16)
