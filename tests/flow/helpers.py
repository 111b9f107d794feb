"""What the flow-control tests share: reading what an event did, and injecting crashes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from engine.model import EventOutcome
from engine.ports import Ports
from infra.local import LocalRuntime
from tests.faults import Intercept, SimulatedCrash


def outcome(rt: LocalRuntime, event_id: str) -> EventOutcome:
    """What the trigger handler recorded for an event (what `stepline send` prints)."""
    found = rt.services.store.get_outcome(event_id, now=rt.now())
    assert found is not None, f"no outcome recorded for event {event_id}"
    return found


def said(rt: LocalRuntime, event_id: str) -> str:
    return outcome(rt, event_id).summary()


def crash_once(
    port: str, when: Callable[[str, tuple, dict], bool], *, after: bool = True
) -> Callable[[Ports], Ports]:
    """A ports hook that kills the handler once, right after (or before) the first call
    of `port` for which `when(method, args, kwargs)` holds."""
    state = {"fired": False}

    def check(name: str, args: tuple, kwargs: dict, *_: Any) -> None:
        if not state["fired"] and when(name, args, kwargs):
            state["fired"] = True
            raise SimulatedCrash(f"crash at {port}.{name}")

    def hook(ports: Ports) -> Ports:
        wrapped = Intercept(
            getattr(ports, port), before=None if after else check, after=check if after else None
        )
        return replace(ports, **{port: wrapped})

    hook.state = state  # type: ignore[attr-defined]
    return hook


def commits(kind: type) -> Callable[[str, tuple, dict], bool]:
    """A flow commit holding a change of `kind`."""
    return lambda name, args, kwargs: (
        name == "commit" and any(isinstance(change, kind) for change in args[0])
    )
