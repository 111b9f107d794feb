"""Workflows the worker tests run in `stepline worker` subprocesses.

Each step notes what it did in a file under STEPLINE_TEST_DIR, so the test process can
count how often step code ran, and waits on files the test creates, so a test decides
when a step ends without fixed sleeps.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from sdk import App, Context

app = App("worker-test")


def _dir() -> Path:
    return Path(os.environ.get("STEPLINE_TEST_DIR", "."))


def note(what: str) -> str:
    with (_dir() / "effects.log").open("a") as log:
        log.write(what + "\n")
    return what


def hold(seconds: float) -> str:
    """A step that works for a while (longer than a message's visibility timeout)."""
    note("long started")
    time.sleep(seconds)
    return note("long done")


def until_released(name: str) -> str:
    note(f"{name} started")
    while not (_dir() / "release").exists():
        time.sleep(0.05)
    return note(f"{name} done")


def quit_once() -> str:
    marker = _dir() / "quit-once"
    if not marker.exists():
        marker.touch()
        note("quit")
        sys.exit(3)
    return note("quit survived")


@app.workflow("long-step", trigger="test/long")
def long_step(ctx: Context) -> str:
    return ctx.step.run("long", hold, float(ctx.event.data["seconds"]))


@app.workflow("gated", trigger="test/gated")
def gated(ctx: Context) -> str:
    ctx.step.run("a", until_released, "a")
    ctx.step.run("b", note, "b")
    ctx.step.run("c", note, "c")
    return "all done"


@app.workflow("quitter", trigger="test/quit")
def quitter(ctx: Context) -> str:
    return ctx.step.run("quit", quit_once)


@app.workflow("plain", trigger="test/plain")
def plain(ctx: Context) -> str:
    return ctx.step.run("plain", note, "plain")
