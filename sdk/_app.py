"""`App` and the `@app.workflow` decorator: the registry of a deployment's workflows.

Everything here is validated when the module defining the workflows is imported (bad
ids, durations and CEL expressions raise `WorkflowDefinitionError`), so a mistake fails
a deploy's first import rather than a run in production.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sdk._cron import Cron, looks_like_schedule, schedule_refusal
from sdk._errors import WorkflowDefinitionError
from sdk._flow import (
    Batch,
    Concurrency,
    Debounce,
    FlowControls,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
    flow_controls,
)
from sdk._plugins import check_plugins
from sdk._retry import Retry
from sdk._triggers import CancelOn, Trigger

F = TypeVar("F", bound=Callable[..., Any])
#: What `trigger=` takes: an event name, a Trigger, or a Cron schedule (or a list of them).
TriggerSpec = str | Trigger | Cron

_WORKFLOW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,79}$")

#: The name of the event an `on_failure` handler receives. Its data holds `run_id`,
#: `workflow_id`, `error` ({"type", "message"}) and `event` (the failed run's trigger).
RUN_FAILED_EVENT = "stepline/run.failed"
#: The name of the event a run started by `step.invoke` receives; its data is `data=`.
INVOKED_EVENT = "stepline/invoked"
ON_FAILURE_SUFFIX = ".on-failure"


@dataclass(frozen=True, eq=False)
class Workflow:
    """A registered workflow. Calling it calls the function (handy in unit tests)."""

    id: str
    fn: Callable[..., Any]
    triggers: tuple[Trigger, ...]
    cancel_on: tuple[CancelOn, ...]
    retries: Retry
    on_failure: Workflow | None
    is_async: bool
    app_name: str
    #: Idempotency, rate limit, throttle, debounce, batching, concurrency, priority,
    #: singleton and timeouts (sdk/_flow.py).
    flow: FlowControls = field(default_factory=FlowControls)
    #: The schedules that start it (`trigger=Cron(...)`), beside its event triggers.
    crons: tuple[Cron, ...] = ()

    def __call__(self, ctx: Any) -> Any:
        return self.fn(ctx)


class App:
    """A named set of workflows; one per deployment (`STEPLINE_APP=module:app`).

    `plugins` hear about every run of the app's workflows (sdk/_plugins.py).
    """

    def __init__(self, name: str, *, plugins: Sequence[object] | None = None) -> None:
        if not isinstance(name, str) or not _WORKFLOW_ID.match(name):
            raise WorkflowDefinitionError(
                f"App name {name!r}: use letters, digits, '.', '_', '-' or '/' (at most 80)"
            )
        self.name = name
        self.plugins = check_plugins(plugins)
        self._workflows: dict[str, Workflow] = {}

    def workflow(
        self,
        id: str,
        *,
        trigger: TriggerSpec | Sequence[TriggerSpec] | None = None,
        cancel_on: Sequence[CancelOn] = (),
        retries: Retry | None = None,
        on_failure: Callable[..., Any] | None = None,
        idempotency: str | None = None,
        rate_limit: RateLimit | None = None,
        throttle: Throttle | None = None,
        debounce: Debounce | None = None,
        batch_events: Batch | None = None,
        concurrency: Concurrency | Sequence[Concurrency] | None = None,
        priority: Priority | None = None,
        singleton: Singleton | None = None,
        timeouts: Timeouts | None = None,
    ) -> Callable[[Callable[..., Any]], Workflow]:
        """Register a workflow function.

        `trigger` names the event(s) that start a run, or schedules runs with
        `Cron(...)`; a list may mix both (omit it for workflows that are only invoked).
        `retries` is the retry policy of each of its steps. `on_failure` is called as its
        own durable run, with a `stepline/run.failed` event, when a run fails. The flow
        controls (`idempotency` ... `timeouts`) are described in sdk/_flow.py and the
        README's "Flow control"; those that admit events (idempotency, rate limit, debounce,
        batching, singleton) apply to event triggers, not to a Cron's ticks.
        """
        if not isinstance(id, str) or not _WORKFLOW_ID.match(id):
            raise WorkflowDefinitionError(
                f"workflow id {id!r}: use letters, digits, '.', '_', '-' or '/' (at most 80)"
            )
        triggers, crons = _triggers(id, trigger)
        cancellations = tuple(cancel_on)
        for rule in cancellations:
            if not isinstance(rule, CancelOn):
                raise WorkflowDefinitionError(
                    f"workflow {id!r}: cancel_on takes CancelOn(...) rules, not {rule!r}"
                )
        policy = retries if retries is not None else Retry()
        if not isinstance(policy, Retry):
            raise WorkflowDefinitionError(f"workflow {id!r}: retries must be a Retry(...)")
        flow = flow_controls(
            id,
            has_triggers=bool(triggers),
            idempotency=idempotency,
            rate_limit=rate_limit,
            throttle=throttle,
            debounce=debounce,
            batch_events=batch_events,
            concurrency=concurrency,
            priority=priority,
            singleton=singleton,
            timeouts=timeouts,
        )

        def register(fn: Callable[..., Any]) -> Workflow:
            _check_signature(id, fn)
            failure_handler = None
            if on_failure is not None:
                _check_signature(f"{id} on_failure", on_failure)
                failure_handler = self._add(
                    Workflow(
                        id=id + ON_FAILURE_SUFFIX,
                        fn=on_failure,
                        triggers=(),
                        cancel_on=(),
                        retries=policy,
                        on_failure=None,
                        is_async=inspect.iscoroutinefunction(on_failure),
                        app_name=self.name,
                    )
                )
            return self._add(
                Workflow(
                    id=id,
                    fn=fn,
                    triggers=triggers,
                    cancel_on=cancellations,
                    retries=policy,
                    on_failure=failure_handler,
                    is_async=inspect.iscoroutinefunction(fn),
                    app_name=self.name,
                    flow=flow,
                    crons=crons,
                )
            )

        return register

    def _add(self, workflow: Workflow) -> Workflow:
        if workflow.id in self._workflows:
            raise WorkflowDefinitionError(
                f"workflow id {workflow.id!r} is registered twice in app {self.name!r}"
            )
        self._workflows[workflow.id] = workflow
        return workflow

    @property
    def workflows(self) -> Mapping[str, Workflow]:
        return dict(self._workflows)

    def get(self, workflow_id: str) -> Workflow | None:
        return self._workflows.get(workflow_id)

    def triggered_by(self, event_name: str) -> list[tuple[Workflow, Trigger]]:
        """The (workflow, trigger) pairs an event of this name may start."""
        return [
            (workflow, trigger)
            for workflow in self._workflows.values()
            for trigger in workflow.triggers
            if trigger.event == event_name
        ]

    def crons(self) -> list[tuple[Workflow, Cron]]:
        """Every (workflow, Cron) pair of the app: the schedules a deployment keeps."""
        return [(w, cron) for w in self._workflows.values() for cron in w.crons]

    def cancellations_for(self, event_name: str) -> list[tuple[Workflow, int, CancelOn]]:
        """The cancel_on rules, with their index in the workflow, an event may fire."""
        return [
            (workflow, index, rule)
            for workflow in self._workflows.values()
            for index, rule in enumerate(workflow.cancel_on)
            if rule.event == event_name
        ]

    def __repr__(self) -> str:
        return f"App({self.name!r}, workflows={sorted(self._workflows)})"


def _triggers(
    workflow_id: str, trigger: TriggerSpec | Sequence[TriggerSpec] | None
) -> tuple[tuple[Trigger, ...], tuple[Cron, ...]]:
    if trigger is None:
        return (), ()
    items: Sequence[TriggerSpec] = (
        [trigger] if isinstance(trigger, str | Trigger | Cron) else list(trigger)
    )
    events: list[Trigger] = []
    crons: list[Cron] = []
    for item in items:
        if isinstance(item, str):
            if looks_like_schedule(item):
                raise WorkflowDefinitionError(
                    f"workflow {workflow_id!r}: trigger {schedule_refusal(item)}"
                )
            events.append(Trigger(item))
        elif isinstance(item, Trigger):
            events.append(item)
        elif isinstance(item, Cron):
            if item in crons:
                raise WorkflowDefinitionError(
                    f"workflow {workflow_id!r}: {item!r} is listed twice in its triggers"
                )
            crons.append(item)
        else:
            raise WorkflowDefinitionError(
                f"workflow {workflow_id!r}: trigger takes event names, Trigger(...) or "
                f"Cron(...), not {item!r}"
            )
    return tuple(events), tuple(crons)


def _check_signature(what: str, fn: Callable[..., Any]) -> None:
    if not callable(fn):
        raise WorkflowDefinitionError(f"{what}: {fn!r} is not a function")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(object())
    except TypeError as error:
        raise WorkflowDefinitionError(
            f"{what}: the function must take exactly one argument, the Context ({error})"
        ) from error
