"""What every log line needs from the message being handled: its keys, and its secrets.

Keys: the engine sets them (run_id, function_id, step_id); the logging set-up in `infra`
copies them onto each record, so the JSON log of a Lambda says which run it is about.

Secrets: the values of the redacted fields (`EngineSettings.redact_fields`, from
STEPLINE_REDACT_FIELDS) that the current message brought in. They are noted as data
enters, in the scope `redacting()` opens for one message (the engine's entry points
do): the event being matched, the trigger event and recorded step outputs of a run the
engine loads, step outputs as they are produced, events a wait receives. The log filter
in `infra.logs` replaces each of them with `***` wherever it appears in a line: message,
arguments, exception text. An exception leaving the scope carries its secrets, so the
handler's line that reports it, written after the scope ended, is masked as well.

A field matches at any depth of the data, and everything under it is secret: a string,
a number, or each string and number inside a list or map. Values shorter than
`MIN_REDACTED_CHARS` are not masked (a field holding "1" or "yes" would otherwise mask
that text in every line); booleans and nulls never are.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

log_context: ContextVar[dict[str, str]] = ContextVar("stepline_log_context", default={})  # noqa: B039

#: What a secret is replaced with.
REDACTED = "***"
#: Secrets shorter than this are left alone.
MIN_REDACTED_CHARS = 4


def bind(**keys: str) -> None:
    """Add keys to the current context (for the rest of this message's handling)."""
    log_context.set({**log_context.get(), **keys})


class Secrets:
    """The texts the log must not show while the current message is handled."""

    def __init__(self, fields: Iterable[str] = ()) -> None:
        self.fields: frozenset[str] = frozenset(fields)
        self._texts: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        # Parallel branches of a run note step outputs from several threads.
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._texts)

    def add_fields(self, fields: Iterable[str]) -> None:
        more = frozenset(fields) - self.fields
        if more:
            with self._lock:
                self.fields = self.fields | more

    def note(self, data: Any) -> None:
        """Remember the values of the redacted fields found anywhere in `data`."""
        if not self.fields:
            return
        found: list[Any] = []
        _collect(data, self.fields, found, inside=False)
        if not found:
            return
        texts = {text for value in found for text in _forms(value)}
        with self._lock:
            if not texts <= self._texts:
                self._texts |= texts
                self._pattern = None

    def scrub(self, text: str) -> str:
        """`text` with every secret replaced by REDACTED."""
        if not self._texts:
            return text
        pattern = self._pattern
        if pattern is None:
            with self._lock:
                # Longest first, so a secret inside a longer one never leaves the rest.
                ordered = sorted(self._texts, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(map(re.escape, ordered)))
        return pattern.sub(REDACTED, text)


def _collect(value: Any, fields: frozenset[str], found: list[Any], *, inside: bool) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _collect(item, fields, found, inside=inside or key in fields)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, fields, found, inside=inside)
    elif inside and isinstance(value, str | int | float) and not isinstance(value, bool):
        found.append(value)


def _forms(value: str | int | float) -> set[str]:
    """The ways a value shows up in a log line: as itself, in repr() and in JSON."""
    if isinstance(value, str):
        forms = {
            value,
            repr(value)[1:-1],
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
        }
    else:
        forms = {str(value), repr(value), json.dumps(value)}
    return {form for form in forms if len(form) >= MIN_REDACTED_CHARS}


_secrets: ContextVar[Secrets | None] = ContextVar("stepline_log_secrets", default=None)


_CARRIED = "_stepline_secrets"
_NOTHING = Secrets()


@contextmanager
def redacting(fields: Iterable[str] = ()) -> Iterator[Secrets]:
    """The scope of one message's handling: secrets noted inside are masked in the log.

    Inside an open scope it joins that one, adding `fields` to the names it redacts;
    secrets are forgotten when the outermost one ends. An exception that leaves the
    scope carries them, so the handler's line reporting it is masked too.
    """
    current = _secrets.get()
    if current is not None:
        current.add_fields(fields)
        yield current
        return
    if not fields:
        # Nothing is redacted: no scope, and `remember` stays a context-variable lookup.
        yield _NOTHING
        return
    scope = Secrets(fields)
    token = _secrets.set(scope)
    try:
        yield scope
    except BaseException as error:
        if scope:
            try:
                setattr(error, _CARRIED, scope)
            except (AttributeError, TypeError):
                pass
        raise
    finally:
        _secrets.reset(token)


def remember(data: Any) -> None:
    """Note the values of redacted fields in `data` (an event's data, a step's output).

    Outside a scope it does nothing; with no field redacted it costs a context-variable
    lookup.
    """
    scope = _secrets.get()
    if scope is not None and scope.fields:
        scope.note(data)


def current_secrets() -> Secrets | None:
    """The secrets of the message being handled, if any are known."""
    scope = _secrets.get()
    return scope if scope else None


def carried_secrets(error: BaseException) -> list[Secrets]:
    """The secrets an exception (or one it was raised from or during) took out of a scope."""
    found: list[Secrets] = []
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        secrets = getattr(current, _CARRIED, None)
        if isinstance(secrets, Secrets) and secrets not in found:
            found.append(secrets)
        pending += [current.__cause__, current.__context__]
    return found
