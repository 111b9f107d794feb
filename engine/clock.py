"""A clock that only moves when told to: virtual time (and seeded, repeatable randomness)
for tests and the local runtime."""

from __future__ import annotations

import random  # noqa: TID251 - this is the Clock port itself: a seeded, deterministic RNG
import threading
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ManualClock:
    """Implements the Clock port; `set`/`advance` move it, nothing else does."""

    def __init__(self, start: datetime, *, seed: int = 0) -> None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self._now = start.astimezone(UTC)
        self._random = random.Random(seed)
        # Tokens come from a stream of their own, so drawing one never shifts the jitter.
        self._tokens = random.Random(f"token-{seed}")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def random(self) -> float:
        with self._lock:
            return self._random.random()

    def monotonic(self) -> float:
        """Virtual seconds: only `set` and `advance` move it, like `now`."""
        return (self._now - _EPOCH).total_seconds()

    def token(self) -> str:
        """128 bits from the seeded stream: deterministic, so tests can repeat a run."""
        with self._lock:
            return f"{self._tokens.getrandbits(128):032x}"

    def set(self, instant: datetime) -> None:
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        self._now = instant.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._now += delta
