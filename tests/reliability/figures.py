"""Counters the reliability suites fill in; printed at the end of the pytest session.

`docs/reliability.md` quotes the table from the latest full run.
"""

from __future__ import annotations

import collections
import os

FIGURES: collections.Counter[str] = collections.Counter()

ORDER = [
    "scenarios run",
    "faults injected",
    "runs checked",
    "runs lost",
    "duplicate step records",
    "side effects beyond the crash window",
    "workers killed",
    "messages delivered more than once",
    "throttling errors injected",
    "bad inputs tried",
    "batches crashed",
    "most runs of a key executing at once",
    "slowest recovery of a killed worker's slot (s)",
]


def full_size() -> bool:
    """STEPLINE_RELIABILITY=full runs the suites at their documented full sizes."""
    return os.environ.get("STEPLINE_RELIABILITY", "").lower() == "full"


def add(name: str, amount: int = 1) -> None:
    FIGURES[name] += amount
