"""Does an event satisfy a trigger, a wait or a cancel rule? Pure functions.

Index keys already narrow candidates to equal match values; these checks add the `if_`
expression, time windows and exclusions, and re-check the key so that a stale or
colliding index entry can never resolve the wrong run.

An expression that cannot be evaluated on an event (an error, or more steps than its
budget allows: see sdk/_expression.py) counts as no match, with a warning that names the
workflow, the expression and the kind of error, never the event's data. The expressions
evaluated while one message is handled (an event matched against triggers, waits and
cancel rules; a run's look-backs) share the budget `expression_budget` opens for it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from engine.ids import subscription_key, waiter_key
from engine.model import CancelSubscription, WaitSpec
from sdk import CancelOn, Event, Trigger
from sdk._expression import Budget, Expression, ExpressionBudgetError, ExpressionError
from sdk._paths import MISSING, lookup

log = logging.getLogger("stepline.matching")


@functools.lru_cache(maxsize=512)
def compiled(source: str) -> Expression:
    return Expression(source, what="expression")


_budget: ContextVar[Budget | None] = ContextVar("stepline_expression_budget", default=None)


@contextmanager
def expression_budget(what: str) -> Iterator[Budget]:
    """One budget for the expressions evaluated inside (joins one already open).

    At the end, if more than one was refused for want of steps, says how many (the
    first is logged at WARNING as it happens, the others at DEBUG).
    """
    current = _budget.get()
    if current is not None:
        yield current
        return
    budget = Budget()
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)
        if budget.refused > 1:
            log.warning(
                "%s: %d expressions were not evaluated within the budget of %s steps and "
                "count as no match (the first is logged above, the others at DEBUG)",
                what,
                budget.refused,
                f"{budget.steps:,}",
            )


def _holds(expression: Expression, *, event: Event, incoming: Event | None, what: str) -> bool:
    budget = _budget.get()
    try:
        return expression.evaluate(event=event, incoming=incoming, budget=budget)
    except ExpressionError as error:
        subject = incoming or event
        level = logging.WARNING
        if isinstance(error, ExpressionBudgetError) and budget is not None:
            if budget.refused:
                level = logging.DEBUG
            budget.refused += 1
        log.log(
            level,
            "%s: the expression %r could not be evaluated on event %s (%s): %s; "
            "treating it as no match",
            what,
            expression.source,
            subject.id,
            subject.name,
            error.category,
        )
        return False


def condition_holds(expression: Expression, event: Event, *, what: str) -> bool:
    """An `if_` over `event` alone (a batch's condition); an error counts as False, logged."""
    return _holds(expression, event=event, incoming=None, what=what)


def trigger_matches(trigger: Trigger, event: Event, *, workflow: str = "?") -> bool:
    if trigger.event != event.name:
        return False
    if trigger.if_ is None:
        return True
    return _holds(
        trigger.if_,
        event=event,
        incoming=None,
        what=f"workflow {workflow!r}, trigger {trigger.event!r}",
    )


def wait_matches(spec: WaitSpec, incoming: Event, trigger: Event | None = None) -> bool:
    """Does `incoming` resolve the wait? `trigger` is the run's trigger, if at hand."""
    if incoming.name != spec.event or incoming.id in spec.exclude:
        return False
    if incoming.ts is not None and incoming.ts < spec.since:
        return False
    if spec.match is not None:
        value = lookup(incoming, spec.match)
        if value is MISSING or waiter_key(spec.event, spec.match, value) != spec.index_key:
            return False
    if spec.if_ is None:
        return True
    context = spec.trigger or trigger
    if context is None:
        return False
    return _holds(
        compiled(spec.if_),
        event=context,
        incoming=incoming,
        what=f"workflow {spec.workflow_id or '?'!r}, wait_for_event {spec.event!r}",
    )


def subscription_key_for(
    workflow_id: str, rule_index: int, rule: CancelOn, event: Event
) -> str | None:
    """The index key under which `event` (trigger or canceller) files for a cancel rule."""
    if rule.match is None:
        return subscription_key(workflow_id, rule_index, None)
    value = lookup(event, rule.match)
    return None if value is MISSING else subscription_key(workflow_id, rule_index, value)


def cancel_matches(
    subscription: CancelSubscription,
    rule: CancelOn,
    trigger: Event | None,
    incoming: Event,
    now: datetime,
) -> bool:
    if subscription.expires_at is not None and subscription.expires_at <= now:
        return False
    key = subscription_key_for(subscription.workflow_id, subscription.index, rule, incoming)
    if key != subscription.index_key:
        return False
    if rule.if_ is None:
        return True
    context = subscription.trigger or trigger
    if context is None:
        return False
    return _holds(
        rule.if_,
        event=context,
        incoming=incoming,
        what=f"workflow {subscription.workflow_id!r}, run {subscription.run_id}, "
        f"cancel_on {rule.event!r}",
    )
