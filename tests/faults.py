"""Test-only fault injection around the ports: crash or fail at a chosen call.

`FaultPlan` wraps every port (store, match index, event log, queue, timers, bus) and,
at the boundary it is given, raises `SimulatedCrash` (the process dies: nothing after
that point runs) or an injected error. Boundaries are named after what was just done or
is about to be done, e.g. "after-step-record" or "before-timer".
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from engine.model import RunStatus, StepKind, StepStatus
from engine.ports import Ports


class SimulatedCrash(BaseException):
    """The process dies here (not an Exception, so no handler code can catch it)."""


Predicate = Callable[[str, tuple, dict], bool]


def _record(args: tuple) -> Any:
    return args[1] if len(args) > 1 else None


def _step_outcome(args: tuple, kwargs: dict) -> bool:
    record = _record(args)
    return (
        record is not None
        and record.kind in (StepKind.RUN, StepKind.SEND)
        and record.status in (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.RETRYING)
    )


def _run_status(*statuses: RunStatus) -> Predicate:
    return lambda name, args, kwargs: name == "write_run" and args[0].status in statuses


# Each boundary: (port, phase, predicate on (method, args, kwargs)).
BOUNDARIES: dict[str, tuple[str, str, Predicate]] = {
    # The engine
    "before-claim": ("store", "before", _run_status(RunStatus.RUNNING)),
    "after-claim": ("store", "after", _run_status(RunStatus.RUNNING)),
    "before-step-record": (
        "store",
        "before",
        lambda name, args, kwargs: name == "put_step" and _step_outcome(args, kwargs),
    ),
    "after-step-record": (
        "store",
        "after",
        lambda name, args, kwargs: name == "put_step" and _step_outcome(args, kwargs),
    ),
    "after-suspension-record": (
        "store",
        "after",
        _run_status(RunStatus.SLEEPING, RunStatus.WAITING, RunStatus.QUEUED),
    ),
    "before-timer": ("timers", "before", lambda name, args, kwargs: name == "arm"),
    "during-waiter-registration": (
        "store",
        "after",
        lambda name, args, kwargs: (
            name == "put_step"
            and _record(args).kind is StepKind.WAIT
            and _record(args).status is StepStatus.WAITING
            and kwargs.get("expected") is None
        ),
    ),
    "after-run-finished": (
        "store",
        "after",
        _run_status(RunStatus.COMPLETED, RunStatus.FAILED),
    ),
    # Queues: the handler enqueued its follow-up, then died before SQS deleted its message.
    "after-enqueue": ("queue", "after", lambda name, args, kwargs: name == "enqueue"),
    "after-publish": ("bus", "after", lambda name, args, kwargs: name == "publish"),
    # Event handlers
    "after-run-created": ("store", "after", lambda name, args, kwargs: name == "create_run"),
    "after-event-logged": ("store", "after", lambda name, args, kwargs: name == "record_event"),
    "after-wait-resolved": (
        "store",
        "after",
        lambda name, args, kwargs: (
            name == "put_step"
            and _record(args).kind in (StepKind.WAIT, StepKind.INVOKE)
            and _record(args).status is StepStatus.COMPLETED
            and (_record(args).indexed or _record(args).kind is StepKind.INVOKE)
        ),
    ),
    "after-poke": ("store", "after", lambda name, args, kwargs: name == "poke"),
    "during-cancellation": ("store", "after", _run_status(RunStatus.CANCELLED)),
}


@dataclass
class FaultPlan:
    """Fire at the `occurrence`-th call matching `boundary` (1-based), `times` times in a row."""

    boundary: str | None = None
    occurrence: int = 1
    times: int = 1
    make_error: Callable[[], BaseException] = lambda: SimulatedCrash("injected crash")
    seen: int = 0
    fired: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _check(self, port: str, phase: str, name: str, args: tuple, kwargs: dict) -> None:
        if self.boundary is None:
            return
        wanted_port, wanted_phase, predicate = BOUNDARIES[self.boundary]
        if port != wanted_port or phase != wanted_phase or not predicate(name, args, kwargs):
            return
        with self._lock:
            self.seen += 1
            due = self.occurrence <= self.seen < self.occurrence + self.times
            if due:
                self.fired += 1
        if due:
            raise self.make_error()

    def hook(self, ports: Ports) -> Ports:
        def wrap(inner: Any, port: str) -> Intercept:
            return Intercept(
                inner,
                before=lambda name, args, kwargs: self._check(port, "before", name, args, kwargs),
                after=lambda name, args, kwargs, _: self._check(port, "after", name, args, kwargs),
            )

        store = wrap(ports.store, "store")
        return replace(
            ports,
            store=store,
            index=store,
            events=store,
            queue=wrap(ports.queue, "queue"),
            timers=wrap(ports.timers, "timers"),
            bus=wrap(ports.bus, "bus"),
        )


# -- the narrower helpers the core tests use ----------------------------------------------


def wrap_store(before=None, after=None) -> Callable[[Ports], Ports]:
    def hook(ports: Ports) -> Ports:
        store = Intercept(ports.store, before, after)
        return replace(ports, store=store, index=store, events=store)

    return hook


class Intercept:
    """Wraps a port; `before(method, args, kwargs)` / `after(...)` may raise."""

    def __init__(self, inner: Any, before=None, after=None) -> None:
        self._inner = inner
        self._before = before
        self._after = after

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._before:
                self._before(name, args, kwargs)
            result = target(*args, **kwargs)
            if self._after:
                self._after(name, args, kwargs, result)
            return result

        return call


def crash_once(predicate: Callable[[str, tuple, dict], bool]):
    """A `before`/`after` rule that raises SimulatedCrash the first time predicate holds."""
    state = {"fired": False}

    def rule(name: str, args: tuple, kwargs: dict, *_: Any) -> None:
        if not state["fired"] and predicate(name, args, kwargs):
            state["fired"] = True
            raise SimulatedCrash(f"crash at {name}")

    rule.state = state  # type: ignore[attr-defined]
    return rule
