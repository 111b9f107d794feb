"""Evaluating `if_` expressions is bounded: one large event cannot hold a handler.

A 250 KB event whose list meets an `exists()` expression used to take seconds per
waiting run (cel-python converted both events whole for every evaluation, then walked
the list). Now an expression converts only what it reads, once per event, and runs on a
budget of steps per evaluation and per event; what needs more counts as no match, with
a log line that names the workflow and the expression and never the data.

The bound is asserted by counting the nodes cel-python visits (lark's
`Interpreter._visit_tree`, through which cel-python evaluates every node), never by
timing: the machine is shared.
"""

from __future__ import annotations

import io
import json
import logging

import lark.visitors
import pytest

from infra.local import LocalRuntime
from infra.logs import configure_lambda_logging
from sdk import App, CancelOn, Context, Event, Trigger
from sdk._expression import (
    MAX_EVENT_STEPS,
    MAX_STEPS,
    Budget,
    Expression,
    ExpressionBudgetError,
    ExpressionError,
)
from tests.conftest import START

# About 250 KB of JSON: a list of 28,000 numbers.
BIG_LIST = list(range(1_000_000, 1_028_000))
COSTLY = "async.data.ids.exists(i, i == event.data.want)"


@pytest.fixture
def visits(monkeypatch):
    """Counts the expression nodes cel-python visits."""
    counter = {"n": 0}
    original = lark.visitors.Interpreter._visit_tree

    def counting(self, tree):
        counter["n"] += 1
        return original(self, tree)

    monkeypatch.setattr(lark.visitors.Interpreter, "_visit_tree", counting)
    return counter


@pytest.fixture
def json_log():
    stream = io.StringIO()
    logger = configure_lambda_logging(stream)
    yield stream
    for handler in list(logger.handlers):
        if getattr(handler, "stepline", False):
            logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def waiting_app(expression: str = COSTLY) -> App:
    app = App("limits")

    @app.workflow("bulk-waiter", trigger="go")
    def flow(ctx: Context) -> bool:
        got = ctx.step.wait_for_event(
            "bulk", event="bulk", match="data.k", if_=expression, timeout="1h"
        )
        return got is not None

    return app


def test_a_costly_event_is_refused_alone_and_within_the_event_budget(visits, json_log):
    with LocalRuntime(waiting_app(), start=START) as rt:
        costly_runs = [
            rt.send(Event(name="go", data={"k": 1, "want": -1, "n": n}))[0] for n in range(3)
        ]
        [innocent] = rt.send(Event(name="go", data={"k": 2, "want": 7}))
        visits["n"] = 0
        rt.send(Event(name="bulk", data={"k": 1, "ids": BIG_LIST}, id="costly-event"))
        # Three waits, one budget for the event: never three times 600,000 nodes.
        assert visits["n"] <= MAX_EVENT_STEPS
        assert [rt.run(run_id).status for run_id in costly_runs] == ["WAITING"] * 3
        # The next event is not held up, and matches as before.
        rt.send(Event(name="bulk", data={"k": 2, "ids": [1, 7, 9]}))
        assert rt.run(innocent).output is True
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    refused = [line for line in lines if "could not be evaluated" in line["message"]]
    assert refused, lines
    assert refused[0]["level"] == "WARNING"
    first = refused[0]["message"]
    assert "'bulk-waiter'" in first and COSTLY in first and "costly-event" in first
    assert "evaluation steps" in first
    # The others on the same event at DEBUG, and counted once.
    assert len(refused) == 1
    assert any(
        "3 expressions were not evaluated within the budget" in line["message"] for line in lines
    )
    # Never the data: not a number of the list.
    assert str(BIG_LIST[0]) not in json_log.getvalue()


def test_a_trigger_expression_that_needs_too_many_steps_starts_nothing(visits):
    app = App("limits")
    started = []
    app.workflow(
        "pairs",
        trigger=Trigger(
            "batch", if_="event.data.ids.exists(x, event.data.ids.exists(y, x == y + 1))"
        ),
    )(lambda ctx: started.append(ctx.run_id))
    app.workflow("plain", trigger="batch")(lambda ctx: "ok")
    with LocalRuntime(app, start=START) as rt:
        visits["n"] = 0
        run_ids = rt.send(Event(name="batch", data={"ids": list(range(3_000))}))
        # Quadratic: 9 million comparisons unbounded; here one evaluation's budget in the
        # trigger handler, and one more in LocalRuntime.send (it matches to report runs).
        assert visits["n"] <= 2 * MAX_STEPS
        assert [rt.run(run_id).workflow_id for run_id in run_ids] == ["plain"]
        # The same expression on a small event starts its run.
        assert len(rt.send(Event(name="batch", data={"ids": [1, 2]}))) == 2


def test_a_costly_cancelling_event_cancels_nothing_and_stops_within_budget(visits):
    app = App("limits")

    @app.workflow(
        "cancellable",
        trigger="go",
        cancel_on=[CancelOn("stop", match="data.k", if_=COSTLY)],
    )
    def flow(ctx: Context) -> None:
        ctx.step.sleep("nap", "1h")

    with LocalRuntime(app, start=START) as rt:
        run_ids = [
            rt.send(Event(name="go", data={"k": 1, "want": -1, "n": n}))[0] for n in range(3)
        ]
        visits["n"] = 0
        rt.send(Event(name="stop", data={"k": 1, "ids": BIG_LIST}))
        assert visits["n"] <= MAX_EVENT_STEPS
        assert {rt.run(run_id).status for run_id in run_ids} == {"SLEEPING"}
        rt.send(Event(name="stop", data={"k": 1, "ids": [-1]}))
        assert {rt.run(run_id).status for run_id in run_ids} == {"CANCELLED"}


def test_a_new_wait_looks_back_over_costly_events_within_one_budget(visits):
    app = App("limits")

    @app.workflow("late-waiter", trigger="go")
    def flow(ctx: Context) -> bool:
        ctx.step.sleep("first", "1m")
        got = ctx.step.wait_for_event("bulk", event="bulk", if_=COSTLY, timeout="1h")
        return got is not None

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go", data={"want": -1}))
        for n in range(3):
            rt.send(Event(name="bulk", data={"n": n, "ids": BIG_LIST}))
        visits["n"] = 0
        rt.advance("2m")  # the wait registers, and looks back at the three events
        assert visits["n"] <= MAX_EVENT_STEPS
        assert rt.run(run_id).status == "WAITING"


def test_an_expression_reads_only_what_it_names_of_a_large_event():
    event = Event(name="t", data={"userId": "u1", "plan": "pro"}, id="t")
    incoming = Event(name="n", data={"userId": "u1", "ids": BIG_LIST}, id="n")
    budget = Budget()
    expression = Expression("async.data.userId == event.data.userId", what="test")
    assert expression.evaluate(event=event, incoming=incoming, budget=budget)
    assert budget.steps - budget.left < 100
    # Reading the list converts it, once however many expressions read it.
    sized = Expression("size(async.data.ids) > 3", what="test")
    assert sized.evaluate(event=event, incoming=incoming, budget=budget)
    after_first = budget.left
    assert budget.steps - after_first > len(BIG_LIST)
    assert sized.evaluate(event=event, incoming=incoming, budget=budget)
    assert after_first - budget.left < 100


def test_the_event_budget_refuses_what_comes_after_it_is_spent():
    incoming = Event(name="n", data={"ids": list(range(4_000))}, id="n")
    event = Event(name="t", data={}, id="t")
    expression = Expression("async.data.ids.exists(i, i == -1)", what="test")
    budget = Budget(steps=MAX_STEPS)
    # The loop is the statement expected to raise: it runs until the budget is spent.
    with pytest.raises(ExpressionBudgetError):  # noqa: PT012
        while True:
            expression.evaluate(event=event, incoming=incoming, budget=budget)
    assert budget.left <= 0
    with pytest.raises(ExpressionBudgetError, match="took all"):
        Expression("true", what="test").evaluate(event=event, budget=budget)


def test_an_expression_error_names_the_expression_and_a_category_never_a_value():
    secret = "4111-1111-1111-1111"
    cases = {
        "int(event.data.card) > 0": "invalid value",
        "event.data.card > 5": "type mismatch",
        "event.data.card.number == 1": "type mismatch",
        "event.data.missing == 1": "no such field",
        "event.data.card": "not a boolean",
    }
    for source, category in cases.items():
        with pytest.raises(ExpressionError) as raised:
            Expression(source, what="test").evaluate(
                event=Event(name="t", data={"card": secret}, id="t")
            )
        assert category in str(raised.value)
        assert source in str(raised.value)
        assert secret not in str(raised.value)
        assert raised.value.__cause__ is None


# Expressions of every form the code base and its users write, on events shaped to make
# each take both branches; each must give what cel-python gives on whole events.
SEMANTIC_CASES = [
    "event.data.plan == 'pro'",
    "async.data.amount > event.data.amount / 2",
    "has(async.data.coupon)",
    "has(event.data.user.email) && event.data.user.email.endsWith('@example.com')",
    "async.data.items.exists(i, i.sku == event.data.sku)",
    "async.data.items.all(i, i.qty > 0)",
    "size(async.data.items) > 1",
    "async.data.items.size() == 2",
    "event.data.plan == 'pro' ? async.data.amount > 10 : async.data.amount > 100",
    "event.data.user.name.startsWith('A') || event.data.user.name.contains('nn')",
    "event.data.user.name.matches('^A.*')",
    "async.data == event.data",
    "size(event) == 4 && event.name == 'order/created'",
    "async.name == 'order/refunded' && async.id != event.id",
    "event.data['plan'] == 'pro'",
    "async.data.items[0].sku == event.data.sku",
    "async.data.items.map(i, i.qty).exists(q, q > 2)",
    "async.data.items.filter(i, i.qty > 1).size() == 1",
    "dyn(event.data.amount) > 1",
    "event.data.amount + 1 > 100",
    "async.data.tags.exists(t, t in event.data.tags)",
    "'vip' in event.data.tags",
    "event.data.user.exists(k, k == 'name')",
    "[1, 2].exists(event, event > 1)",
    "async.data.event.kind == 'x'",
    "has(event.data)",
    "event.data.user.name.size() > 2",
    "event.data[async.data.key] == 'pro'",
    ".event.data.plan == 'pro'",
    "x.event == 1",
]
SEMANTIC_EVENTS = [
    (
        {
            "plan": "pro",
            "amount": 100,
            "sku": "a",
            "user": {"name": "Ann", "email": "ann@example.com"},
            "tags": ["vip", "eu"],
        },
        {
            "amount": 80,
            "coupon": "X",
            "items": [{"sku": "a", "qty": 3}, {"sku": "b", "qty": 1}],
            "tags": ["eu"],
            "event": {"kind": "x"},
            "key": "plan",
        },
    ),
    (
        {"plan": "free", "amount": 2, "sku": "z", "user": {"name": "Bob"}, "tags": []},
        {"amount": 1, "items": [], "tags": ["us"], "event": {"kind": "y"}},
    ),
    ({"plan": 3}, {"amount": "lots", "items": "none"}),
]


def _stock(source: str, event: Event, incoming: Event) -> object:
    """What cel-python gives with both events converted whole (how evaluation used to be)."""
    import celpy
    from celpy.adapter import json_to_cel

    from sdk._expression import event_as_map

    environment = celpy.Environment()
    program = environment.program(environment.compile(source))
    try:
        result = program.evaluate(
            {
                "event": json_to_cel(event_as_map(event)),
                "async": json_to_cel(event_as_map(incoming)),
            }
        )
    except Exception:
        return "error"
    if isinstance(result, Exception):
        return "error"
    return bool(result) if isinstance(result, celpy.celtypes.BoolType | bool) else "error"


@pytest.mark.parametrize("source", SEMANTIC_CASES)
def test_expressions_give_what_they_gave_on_whole_events(source):
    for trigger_data, incoming_data in SEMANTIC_EVENTS:
        event = Event(name="order/created", data=trigger_data, id="t1")
        incoming = Event(name="order/refunded", data=incoming_data, id="n1")
        try:
            ours: object = Expression(source, what="test").evaluate(event=event, incoming=incoming)
        except ExpressionError:
            ours = "error"
        assert ours == _stock(source, event, incoming), (source, trigger_data, incoming_data)
