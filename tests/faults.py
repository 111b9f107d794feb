"""Test-only fault injection around the ports: fail or crash at a chosen call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from engine.ports import Ports


class SimulatedCrash(BaseException):
    """The process dies here: nothing after this point runs (not an Exception on purpose)."""


class Intercept:
    """Wraps a port; `rule(method, args, kwargs)` may raise before (or after) the real call."""

    def __init__(
        self,
        inner: Any,
        before: Callable[[str, tuple, dict], None] | None = None,
        after: Callable[[str, tuple, dict, Any], None] | None = None,
    ) -> None:
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


def wrap_store(before=None, after=None) -> Callable[[Ports], Ports]:
    def hook(ports: Ports) -> Ports:
        store = Intercept(ports.store, before, after)
        return replace(ports, store=store, index=store, events=store)

    return hook


def crash_once(predicate: Callable[[str, tuple, dict], bool]):
    """A `before`/`after` rule that raises SimulatedCrash the first time predicate holds."""
    state = {"fired": False}

    def rule(name: str, args: tuple, kwargs: dict, *_: Any) -> None:
        if not state["fired"] and predicate(name, args, kwargs):
            state["fired"] = True
            raise SimulatedCrash(f"crash at {name}")

    rule.state = state  # type: ignore[attr-defined]
    return rule
