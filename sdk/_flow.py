"""Flow controls: the `@app.workflow` arguments that decide when (and whether) runs start.

    @app.workflow("sync-crm", trigger="crm/contact.updated",
                  idempotency="event.data.contactId",
                  rate_limit=RateLimit(limit=10, period="1m", key="event.data.accountId"),
                  throttle=Throttle(limit=5, period="1s", key="event.data.accountId"),
                  debounce=Debounce(period="5m", key="event.data.contactId", timeout="1h"),
                  batch_events=Batch(max_size=100, timeout="30s", key="event.data.accountId"),
                  concurrency=[Concurrency(limit=5), Concurrency(limit=1, key="event.data.accountId")],
                  priority=Priority(run="event.data.plan == 'enterprise' ? 120 : 0"),
                  singleton=Singleton(key="event.data.contactId", mode="skip"),
                  timeouts=Timeouts(start="10m", finish="1h"))

They apply in Inngest's order: idempotency, rate limit and batching before a run is
created (the trigger); debounce and singleton when it is scheduled; throttle and
concurrency when it executes (engine/flow/ says how each is kept). Every argument is
checked here, when the workflow is defined: a bad one raises `WorkflowDefinitionError`
saying what to write. Keys are CEL expressions over `event` (sdk/_key.py).

Any of them combine, all ten at once included. With `batch_events`:

- idempotency and the rate limit act on each event before it joins a batch: a duplicate
  or a rate-limited event joins nothing, and its lookup says why.
- debounce puts off the start of a batch that is ready (full, or at its timeout) until
  the debounce key of the batch's FIRST event has been quiet for `period` (no event
  with that key value for that long), at the latest `timeout` after the first event of
  that burst. Every batched event counts towards its own key's quiet period; no event is
  dropped, and the batch still takes events (up to `max_size`) while it is put off.
  Events that `Batch(if_=...)` leaves out are debounced as usual, each on its own.
- singleton, priority, a concurrency or throttle key, and `cancel_on` are evaluated on
  the batch's first event (`ctx.event`), as Inngest does for batched runs: the other
  events of the batch may have other values; choose the batch key so that they do not
  matter (e.g. batch and limit per account). A singleton is checked when an event opens
  a batch (an event that joins an open batch joins its run). A batch's run cancelled
  while it collects (by `cancel_on`, a singleton, by hand) closes its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sdk._duration import Duration, parse_duration
from sdk._errors import WorkflowDefinitionError
from sdk._expression import Expression
from sdk._key import KeyExpression

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
#: The most events one batch holds, and the most bytes of event JSON (a batch starts
#: once either is reached, as Inngest's 10 MiB cap does; ours keeps a run's load small).
MAX_BATCH_SIZE = 1000
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_CONCURRENCY = 1000
MAX_PRIORITY_SECONDS = 600
#: How long an idempotency key keeps a second run from starting (as in Inngest).
IDEMPOTENCY_WINDOW = DAY


def _count(what: str, value: Any, *, low: int, high: int, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WorkflowDefinitionError(
            f"{what} must be a whole number from {low:,} to {high:,} (got {value!r}); "
            f"e.g. {example}"
        )
    return value


def _period(
    what: str, value: Duration, *, low: timedelta, high: timedelta, example: str
) -> timedelta:
    period = parse_duration(value, what=what)
    if not low <= period <= high:
        raise WorkflowDefinitionError(
            f"{what} must be from {_text(low)} to {_text(high)} (got {_text(period)}); "
            f"e.g. {example}"
        )
    return period


def _text(delta: timedelta) -> str:
    """A duration as people write it: 90s -> "1m30s"."""
    seconds = delta.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            count, seconds = divmod(seconds, size)
            parts.append(f"{count:g}{unit}")
    if seconds or not parts:
        parts.append(f"{seconds:g}s")
    return "".join(parts)


def _key(what: str, key: str | None) -> KeyExpression | None:
    return None if key is None else KeyExpression(key, what=what)


@dataclass(frozen=True, init=False)
class RateLimit:
    """Start at most `limit` runs per `period` (per key); drop the events over it.

    A GCRA bucket, as Inngest's: runs are spread at one per `period / limit` on average,
    with bursts of up to `limit // 10 + 1`. Use it for work you can afford to skip.
    """

    limit: int
    period: timedelta
    key: KeyExpression | None

    def __init__(self, limit: int, period: Duration, *, key: str | None = None) -> None:
        example = 'RateLimit(limit=10, period="1m", key="event.data.accountId")'
        object.__setattr__(
            self, "limit", _count("RateLimit limit", limit, low=1, high=10**6, example=example)
        )
        object.__setattr__(
            self,
            "period",
            _period("RateLimit period", period, low=SECOND, high=DAY, example=example),
        )
        object.__setattr__(self, "key", _key("RateLimit key", key))

    @property
    def burst(self) -> int:
        return self.limit // 10 + 1


@dataclass(frozen=True, init=False)
class Throttle:
    """Start at most `limit` runs per `period` (per key); queue the others, FIFO.

    Runs are spaced `period / limit` apart, `burst` of them at once. None is dropped.
    """

    limit: int
    period: timedelta
    key: KeyExpression | None
    burst: int

    def __init__(
        self, limit: int, period: Duration, *, key: str | None = None, burst: int = 1
    ) -> None:
        example = 'Throttle(limit=5, period="1s", key="event.data.accountId", burst=1)'
        object.__setattr__(
            self, "limit", _count("Throttle limit", limit, low=1, high=10**6, example=example)
        )
        object.__setattr__(
            self,
            "period",
            _period("Throttle period", period, low=SECOND, high=WEEK, example=example),
        )
        object.__setattr__(self, "key", _key("Throttle key", key))
        object.__setattr__(
            self, "burst", _count("Throttle burst", burst, low=1, high=self.limit, example=example)
        )


@dataclass(frozen=True, init=False)
class Debounce:
    """Start one run once no event (per key) has arrived for `period`, with the last event.

    `timeout` caps how long after the first event the run may be put off.
    """

    period: timedelta
    key: KeyExpression | None
    timeout: timedelta | None

    def __init__(
        self, period: Duration, *, key: str | None = None, timeout: Duration | None = None
    ) -> None:
        example = 'Debounce(period="5m", key="event.data.contactId", timeout="1h")'
        object.__setattr__(
            self,
            "period",
            _period("Debounce period", period, low=SECOND, high=WEEK, example=example),
        )
        object.__setattr__(self, "key", _key("Debounce key", key))
        object.__setattr__(
            self,
            "timeout",
            None
            if timeout is None
            else _period("Debounce timeout", timeout, low=SECOND, high=WEEK, example=example),
        )


@dataclass(frozen=True, init=False)
class Batch:
    """Collect events (per key) into one run of up to `max_size` events (`ctx.events`).

    The run starts when the batch is full, `timeout` after its first event, or once it
    holds 4 MB of events. With `if_`, only events for which it holds are batched; the
    others start a run each, at once.
    """

    max_size: int
    timeout: timedelta
    key: KeyExpression | None
    if_: Expression | None

    def __init__(
        self,
        max_size: int,
        timeout: Duration,
        *,
        key: str | None = None,
        if_: str | None = None,
    ) -> None:
        example = 'Batch(max_size=100, timeout="30s", key="event.data.accountId")'
        object.__setattr__(
            self,
            "max_size",
            _count("Batch max_size", max_size, low=1, high=MAX_BATCH_SIZE, example=example),
        )
        object.__setattr__(
            self,
            "timeout",
            _period("Batch timeout", timeout, low=SECOND, high=timedelta(hours=1), example=example),
        )
        object.__setattr__(self, "key", _key("Batch key", key))
        object.__setattr__(self, "if_", None if if_ is None else Expression(if_, what="Batch if_"))


Scope = Literal["workflow", "app"]


@dataclass(frozen=True, init=False)
class Concurrency:
    """At most `limit` runs (per key) executing steps at once; the others queue, FIFO.

    Runs that sleep or wait hold no slot. `scope="app"` shares the limit (and key values)
    with every workflow of the app that declares the same key value.
    """

    limit: int
    key: KeyExpression | None
    scope: Scope

    def __init__(self, limit: int, *, key: str | None = None, scope: Scope = "workflow") -> None:
        example = 'Concurrency(limit=5, key="event.data.accountId")'
        object.__setattr__(
            self,
            "limit",
            _count("Concurrency limit", limit, low=1, high=MAX_CONCURRENCY, example=example),
        )
        if scope not in ("workflow", "app"):
            raise WorkflowDefinitionError(
                f'Concurrency scope must be "workflow" (the default) or "app", not {scope!r}'
            )
        if scope == "app" and key is None:
            raise WorkflowDefinitionError(
                'Concurrency(scope="app") needs a key naming the shared limit, e.g. '
                'Concurrency(limit=10, key=\'"openai"\', scope="app")'
            )
        object.__setattr__(self, "key", _key("Concurrency key", key))
        object.__setattr__(self, "scope", scope)


@dataclass(frozen=True, init=False)
class Priority:
    """`run` is a CEL expression giving seconds (-600..600): a positive value puts the
    run that far ahead of runs queued (for concurrency) before it; a negative one delays
    its start by that long."""

    run: KeyExpression

    def __init__(self, run: str) -> None:
        if not isinstance(run, str) or not run.strip():
            raise WorkflowDefinitionError(
                "Priority run must be a CEL expression giving seconds, e.g. "
                "Priority(run=\"event.data.plan == 'enterprise' ? 120 : 0\")"
            )
        object.__setattr__(self, "run", KeyExpression(run, what="Priority run"))


@dataclass(frozen=True, init=False)
class Singleton:
    """At most one unfinished run per key. A new one is skipped (`mode="skip"`) or
    replaces the running one, which is cancelled (`mode="cancel"`)."""

    key: KeyExpression | None
    mode: Literal["skip", "cancel"]

    def __init__(self, *, key: str | None = None, mode: Literal["skip", "cancel"] = "skip") -> None:
        if mode not in ("skip", "cancel"):
            raise WorkflowDefinitionError(
                f'Singleton mode must be "skip" or "cancel", not {mode!r}; e.g. '
                'Singleton(key="event.data.contactId", mode="skip")'
            )
        object.__setattr__(self, "key", _key("Singleton key", key))
        object.__setattr__(self, "mode", mode)


@dataclass(frozen=True, init=False)
class Timeouts:
    """Cancel a run not started within `start` of its event, or not finished within
    `finish` of its start."""

    start: timedelta | None
    finish: timedelta | None

    def __init__(self, *, start: Duration | None = None, finish: Duration | None = None) -> None:
        example = 'Timeouts(start="10m", finish="1h")'
        if start is None and finish is None:
            raise WorkflowDefinitionError(f"Timeouts needs start, finish or both; e.g. {example}")
        year = timedelta(days=366)
        object.__setattr__(
            self,
            "start",
            None
            if start is None
            else _period("Timeouts start", start, low=SECOND, high=year, example=example),
        )
        object.__setattr__(
            self,
            "finish",
            None
            if finish is None
            else _period("Timeouts finish", finish, low=SECOND, high=year, example=example),
        )


@dataclass(frozen=True)
class FlowControls:
    """A workflow's flow controls, checked together (`flow_controls`)."""

    idempotency: KeyExpression | None = None
    rate_limit: RateLimit | None = None
    throttle: Throttle | None = None
    debounce: Debounce | None = None
    batch: Batch | None = None
    concurrency: tuple[Concurrency, ...] = ()
    priority: Priority | None = None
    singleton: Singleton | None = None
    timeouts: Timeouts | None = None

    @property
    def at_trigger(self) -> bool:
        """Whether an event's admission needs the flow items (not only a plain start)."""
        return any(
            control is not None
            for control in (
                self.idempotency,
                self.rate_limit,
                self.debounce,
                self.batch,
                self.singleton,
            )
        )

    @property
    def any(self) -> bool:
        return self.at_trigger or any(
            control is not None and control != ()
            for control in (self.throttle, self.concurrency, self.priority, self.timeouts)
        )


def _typed(workflow_id: str, name: str, value: Any, kind: type, example: str) -> Any:
    if value is not None and not isinstance(value, kind):
        raise WorkflowDefinitionError(
            f"workflow {workflow_id!r}: {name} takes {kind.__name__}(...), not {value!r}; "
            f"e.g. {name}={example}"
        )
    return value


def flow_controls(
    workflow_id: str,
    *,
    has_triggers: bool,
    idempotency: str | None,
    rate_limit: RateLimit | None,
    throttle: Throttle | None,
    debounce: Debounce | None,
    batch_events: Batch | None,
    concurrency: Concurrency | Sequence[Concurrency] | None,
    priority: Priority | None,
    singleton: Singleton | None,
    timeouts: Timeouts | None,
) -> FlowControls:
    """Check the flow-control arguments of `@app.workflow` together; see the docstring."""
    where = f"workflow {workflow_id!r}"
    key = None
    if idempotency is not None:
        if not isinstance(idempotency, str):
            raise WorkflowDefinitionError(
                f"{where}: idempotency takes a CEL expression, e.g. "
                f'idempotency="event.data.orderId", not {idempotency!r}'
            )
        key = KeyExpression(idempotency, what=f"{where}: idempotency")
    limits: tuple[Concurrency, ...]
    if concurrency is None:
        limits = ()
    elif isinstance(concurrency, Concurrency):
        limits = (concurrency,)
    elif isinstance(concurrency, Sequence) and all(isinstance(c, Concurrency) for c in concurrency):
        limits = tuple(concurrency)
    else:
        raise WorkflowDefinitionError(
            f"{where}: concurrency takes Concurrency(...) or a list of up to two, not "
            f"{concurrency!r}; e.g. concurrency=[Concurrency(limit=5), "
            'Concurrency(limit=1, key="event.data.accountId")]'
        )
    if len(limits) > 2:
        raise WorkflowDefinitionError(
            f"{where}: at most two concurrency limits (got {len(limits)}), as in Inngest"
        )
    if len(limits) == 2 and _limit_identity(limits[0]) == _limit_identity(limits[1]):
        raise WorkflowDefinitionError(
            f"{where}: the two concurrency limits have the same scope and key; give them "
            "different keys (or keep one)"
        )
    flow = FlowControls(
        idempotency=key,
        rate_limit=_typed(workflow_id, "rate_limit", rate_limit, RateLimit, "RateLimit(...)"),
        throttle=_typed(workflow_id, "throttle", throttle, Throttle, "Throttle(...)"),
        debounce=_typed(workflow_id, "debounce", debounce, Debounce, "Debounce(...)"),
        batch=_typed(workflow_id, "batch_events", batch_events, Batch, "Batch(...)"),
        concurrency=limits,
        priority=_typed(workflow_id, "priority", priority, Priority, "Priority(run=...)"),
        singleton=_typed(workflow_id, "singleton", singleton, Singleton, "Singleton(...)"),
        timeouts=_typed(workflow_id, "timeouts", timeouts, Timeouts, "Timeouts(...)"),
    )
    _check_combinations(where, flow, has_triggers=has_triggers)
    return flow


def _limit_identity(limit: Concurrency) -> tuple[str, str | None]:
    return limit.scope, limit.key.source if limit.key is not None else None


def _check_combinations(where: str, flow: FlowControls, *, has_triggers: bool) -> None:
    # Every combination is allowed (the module docstring says how they compose), but the
    # controls applied to events need events.
    if flow.at_trigger and not has_triggers:
        raise WorkflowDefinitionError(
            f"{where}: idempotency, rate_limit, debounce, batch_events and singleton apply to "
            "the events that trigger a workflow, and this one has no trigger; add "
            'trigger="..." or drop them'
        )
