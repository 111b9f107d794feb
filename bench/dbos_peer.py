"""DBOS, the peer: the same inline workflow as a DBOS workflow on its default SQLite.

DBOS is a library plus a database that records each step with one write, so on a local
SQLite file its time per step is the floor of that design. It runs in-process in a
worker interpreter of its own (DBOS starts background threads, which would otherwise
compete for the GIL with the side being timed), driven over a pipe so that its trials
interleave with ours. It is optional (the `bench` extra); without it the DBOS figures
are null.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from typing import Any


def serve(directory: str | None = None) -> None:
    """The worker: launch DBOS with its SQLite file in a new folder under `directory`
    (default: the temporary directory), then run the workflow once per line of stdin."""
    import logging

    from dbos import DBOS

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="stepline-bench-dbos-", dir=directory) as folder:
        DBOS(
            config={
                "name": "stepline-bench",
                "system_database_url": f"sqlite:///{os.path.join(folder, 'dbos.sqlite')}",
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

        DBOS.launch()
        print("ready", flush=True)
        for line in sys.stdin:
            steps = int(line)
            started = time.perf_counter()
            result = workflow(steps)
            elapsed = time.perf_counter() - started
            if result != steps:
                raise RuntimeError(f"the DBOS workflow returned {result!r}")
            print(elapsed, flush=True)
        DBOS.destroy()


class DbosPeer:
    """A DBOS worker process, launched once; `run` times one workflow run in it."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory or tempfile.gettempdir()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from bench.dbos_peer import serve; serve({self.directory!r})",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        if self._readline() != "ready":
            raise RuntimeError("the DBOS worker did not start")

    def _readline(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the DBOS worker exited")
        return line.strip()

    def run(self, steps: int) -> float:
        """Run the workflow once to completion; returns its wall time in seconds."""
        assert self._process.stdin is not None
        self._process.stdin.write(f"{steps}\n")
        self._process.stdin.flush()
        return float(self._readline())

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


TMPFS = "/dev/shm"


def dbos_peer(directory: str | None = None) -> DbosPeer | None:
    """A launched DBOS peer with its SQLite file under `directory` (default: the
    temporary directory, on disk here), or None when DBOS is not installed."""
    if importlib.util.find_spec("dbos") is None:
        return None
    return DbosPeer(directory)


def filesystem_of(directory: str) -> str:
    """The type of the filesystem `directory` is on (from /proc/mounts), or "unknown"."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if (
                    len(fields) > 2
                    and os.path.realpath(directory).startswith(fields[1])
                    and len(fields[1]) > len(best)
                ):
                    best, kind = fields[1], fields[2]
    except OSError:
        pass
    return kind
