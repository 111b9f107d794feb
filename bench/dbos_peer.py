"""DBOS, the peer: the same inline workflow as a DBOS workflow on its default SQLite.

DBOS is a library plus a database that records each step with one write, so on a local
SQLite file its time per step is the floor of that design. It is optional (the `bench`
extra); without it the DBOS figures are null.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any


class DbosPeer:
    """One DBOS instance in this process, launched once, with a `steps`-step workflow."""

    def __init__(self) -> None:
        from dbos import DBOS

        self._dir = tempfile.TemporaryDirectory(prefix="stepline-bench-dbos-")
        path = os.path.join(self._dir.name, "dbos.sqlite")
        DBOS(
            config={
                "name": "stepline-bench",
                "system_database_url": f"sqlite:///{path}",
                "run_admin_server": False,
                "log_level": "WARNING",
                "application_version": "bench",
            }
        )

        @DBOS.step()
        def step(index: int) -> dict[str, Any]:
            return {"index": index, "ok": True}

        @DBOS.workflow()
        def workflow(steps: int) -> int:
            for index in range(steps):
                step(index)
            return steps

        self._workflow = workflow
        DBOS.launch()
        self._dbos = DBOS
        logging.getLogger("dbos").setLevel(logging.WARNING)

    def run(self, steps: int) -> float:
        """Run the workflow once to completion; returns its wall time in seconds."""
        started = time.perf_counter()
        result = self._workflow(steps)
        elapsed = time.perf_counter() - started
        if result != steps:
            raise RuntimeError(f"the DBOS workflow returned {result!r}")
        return elapsed

    def close(self) -> None:
        self._dbos.destroy()
        self._dir.cleanup()


def dbos_peer() -> DbosPeer | None:
    """A launched DBOS peer, or None when DBOS is not installed."""
    try:
        import dbos  # noqa: F401
    except ImportError:
        return None
    return DbosPeer()
