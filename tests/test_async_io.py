"""Async workflows keep their port calls off the event loop.

In an `async def` workflow the steps' store, bus and queue calls run in worker threads,
so parallel branches overlap their I/O instead of queueing on the loop: a branch whose
step record is being written does not stop another branch from writing its own.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from typing import Any

from engine.testing import FakeCluster
from sdk import App, AsyncContext, Event
from tests.conftest import START
from tests.faults import Intercept

BARRIER_TIMEOUT = 5.0


def test_parallel_async_branches_write_their_step_records_at_the_same_time():
    # GIVEN a store whose step writes for "a" and "b" each wait (at most 5 s) until both
    # writes are under way: they complete only if the two are in flight together
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
    met: list[str] = []

    def meet(name: str, args: tuple, kwargs: dict) -> None:
        if name == "put_step" and args[1].id in ("a", "b") and kwargs.get("expected") is None:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                met.append(f"{args[1].id} waited alone")
                raise
            met.append(args[1].id)

    def hook(ports: Any) -> Any:
        store = Intercept(ports.store, before=meet)
        return replace(ports, store=store, index=store, events=store)

    app = App("t")

    async def fetch(name: str) -> str:
        await asyncio.sleep(0)
        return name.upper()

    @app.workflow("fan-out", trigger="go")
    async def flow(ctx: AsyncContext) -> list[str]:
        return await ctx.step.parallel(
            lambda: ctx.step.run("a", fetch, "a"), lambda: ctx.step.run("b", fetch, "b")
        )

    cluster = FakeCluster(app, start=START, ports_hook=hook)
    # WHEN the run is started
    [run_id] = cluster.send(Event(name="go"))
    # THEN both writes met (neither blocked the loop the other needed) and the run completed
    assert sorted(met) == ["a", "b"]
    run = cluster.store.get_run(run_id)
    assert (run.status.value, run.output) == ("COMPLETED", ["A", "B"])


def test_an_async_workflows_port_calls_run_off_its_event_loop_thread():
    # GIVEN a store that notes which thread each step write runs on
    writers: list[int] = []

    def note(name: str, args: tuple, kwargs: dict) -> None:
        if name == "put_step":
            writers.append(threading.get_ident())

    def hook(ports: Any) -> Any:
        store = Intercept(ports.store, before=note)
        return replace(ports, store=store, index=store, events=store)

    loop_threads: list[int] = []
    app = App("t")

    @app.workflow("one", trigger="go")
    async def flow(ctx: AsyncContext) -> int:
        loop_threads.append(threading.get_ident())
        await ctx.step.sleep("nap", "0s")
        return await ctx.step.run("one", lambda: 1)

    cluster = FakeCluster(app, start=START, ports_hook=hook)
    # WHEN it runs
    [run_id] = cluster.send(Event(name="go"))
    # THEN it completed, and no step record was written from the loop's thread
    assert cluster.store.get_run(run_id).output == 1
    assert len(writers) == 2
    assert not set(writers) & set(loop_threads)
