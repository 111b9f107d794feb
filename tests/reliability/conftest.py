"""Reliability suites: print the figures they gathered at the end of the session."""

from __future__ import annotations

from typing import Any

from tests.reliability.figures import FIGURES, ORDER, full_size


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    size = "full" if full_size() else "reduced (STEPLINE_RELIABILITY=full for full size)"
    terminalreporter.section(f"reliability figures, {size}")
    for name in [*ORDER, *sorted(set(FIGURES) - set(ORDER))]:
        if name in FIGURES:
            terminalreporter.write_line(f"{name:>40}: {FIGURES[name]}")
