"""Workflows the CLI tests run in `stepline dev` / `stepline worker` subprocesses.

Side effects go to files under STEPLINE_TEST_DIR so the test process can see them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sdk import App, Context, NonRetriableError, Trigger

app = App("cli-test")


def _dir() -> Path:
    return Path(os.environ.get("STEPLINE_TEST_DIR", "."))


def note(name: str) -> str:
    with (_dir() / "effects.log").open("a") as log:
        log.write(name + "\n")
    return name


def charge() -> str:
    note("charge")
    if (_dir() / "decline-charges").exists():
        raise NonRetriableError("card declined")
    return "charged"


@app.workflow("quick", trigger="test/quick")
def quick(ctx: Context) -> str:
    return ctx.step.run("hello", lambda: f"hello {ctx.event.data['name']}")


@app.workflow("nap", trigger="test/nap")
def nap(ctx: Context) -> str:
    ctx.step.run("before", note, "before-nap")
    ctx.step.sleep("nap", "1h")
    return "rested"


@app.workflow("checkout", trigger="test/checkout")
def checkout(ctx: Context) -> str:
    ctx.step.run("reserve", note, "reserve")
    ctx.step.run("charge", charge)
    ctx.step.run("ship", note, "ship")
    return "shipped"


@app.workflow("pro-only", trigger=Trigger("test/pro", if_="event.data.plan == 'pro'"))
def pro_only(ctx: Context) -> str:
    return "pro"


def wait_for_release() -> str:
    """Runs until the test creates the file `release` (bounded, so nothing hangs)."""
    release = _dir() / "release"
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return "released" if release.exists() else "gave up"


@app.workflow("hold", trigger="test/hold")
def hold(ctx: Context) -> str:
    ctx.step.run("first", note, "first")
    return ctx.step.run("held", wait_for_release)


# Long, like real workflow names: its run ids are wider than a narrow terminal.
LONG_WORKFLOW = "order-fulfilment-for-the-european-warehouses-and-their-carriers"


@app.workflow(LONG_WORKFLOW, trigger="test/long")
def long_named(ctx: Context) -> str:
    return ctx.step.run("pack", lambda: "packed")
