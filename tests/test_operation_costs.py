"""What each durable operation costs in DynamoDB requests, counted with botocore hooks.

Each figure is the difference between a run with the operation and the same run
without it, so the run's own fixed costs (create, claim, load, final write) cancel out.
The figures are quoted in the README ("Durable operations"), so a change that makes an
operation costlier shows up here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START, RequestCounter


def counted(
    requests_of: Callable[[Any], RequestCounter],
    body: Callable[[Context, list[str]], Any],
    then: Callable[[LocalRuntime, list[str]], None] = lambda rt, handed: None,
) -> RequestCounter:
    """The AWS requests of one run of `body`, from its event to its end."""
    app = App("t")
    handed: list[str] = []

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> Any:
        return body(ctx, handed)

    with LocalRuntime(app, start=START) as rt:
        counter = requests_of(rt)
        [run_id] = rt.send(Event(name="go"))
        then(rt, handed)
        counter.enabled = False
        assert rt.run(run_id).status == "COMPLETED", rt.run(run_id).error
        return counter


def extra(requests_of, body, then=lambda rt, handed: None) -> dict[str, int]:
    """Requests of `body` beyond a run that does nothing, by DynamoDB operation."""
    base = counted(requests_of, lambda ctx, handed: None).counts
    with_op = counted(requests_of, body, then).counts
    names = {name for service, name in {**base, **with_op} if service == "dynamodb"}
    delta = {name: with_op[("dynamodb", name)] - base[("dynamodb", name)] for name in sorted(names)}
    return {name: count for name, count in delta.items() if count}


def test_a_plain_step_is_one_conditional_put(requests_of):
    assert extra(requests_of, lambda ctx, h: ctx.step.run("a", lambda: 1)) == {"PutItem": 1}


def test_step_options_cost_nothing_but_at_most_once_one_put_per_attempt(requests_of):
    def with_options(ctx: Context, handed: list[str]) -> Any:
        return ctx.step.run("a", lambda: 1, timeout="1m", serdes=_Text(), retries=None)

    assert extra(requests_of, with_options) == {"PutItem": 1}
    at_most_once = extra(
        requests_of, lambda ctx, h: ctx.step.run("a", lambda: 1, at_most_once=True)
    )
    assert at_most_once == {"PutItem": 2}


def test_a_map_is_two_puts_plus_one_per_item_plus_its_items_steps(requests_of):
    plain = extra(requests_of, lambda ctx, h: ctx.step.map("m", range(10), lambda v, i: v))
    assert plain == {"PutItem": 12}
    with_steps = extra(
        requests_of,
        lambda ctx, h: ctx.step.map("m", range(10), lambda v, i: ctx.step.run("s", lambda: v)),
    )
    assert with_steps == {"PutItem": 22}


def test_a_parallel_with_a_completion_option_is_two_puts_plus_one_per_branch(requests_of):
    def body(ctx: Context, handed: list[str]) -> Any:
        return ctx.step.parallel(
            lambda: ctx.step.run("a", lambda: 1),
            lambda: ctx.step.run("b", lambda: 2),
            tolerated_failure_count=1,
        ).results()

    assert extra(requests_of, body) == {"PutItem": 2 + 2 + 2}
    plain = extra(
        requests_of,
        lambda ctx, h: ctx.step.parallel(
            lambda: ctx.step.run("a", lambda: 1), lambda: ctx.step.run("b", lambda: 2)
        ),
    )
    assert plain == {"PutItem": 2}


def test_a_child_is_two_puts_plus_its_steps(requests_of):
    body = lambda ctx, h: ctx.step.child("c", lambda: ctx.step.run("s", lambda: 1))  # noqa: E731
    assert extra(requests_of, body) == {"PutItem": 3}


def test_a_callback_costs_one_put_and_its_completion_a_read_a_put_and_a_poke(requests_of):
    def body(ctx: Context, handed: list[str]) -> Any:
        cb = ctx.step.create_callback("cb")
        handed.append(cb.id)
        return cb.result()

    costs = extra(requests_of, body, lambda rt, handed: rt.complete_callback(handed[0], 1))
    # Creating: 1 put. Completing: a GetItem of the callback's step, its conditional put
    # and the poke (UpdateItem) that wakes the run. Waiting: the run's write when it
    # suspends, the claim and the Query of the resume.
    assert costs == {"GetItem": 1, "PutItem": 1 + 1 + 2, "Query": 1, "UpdateItem": 1}


def test_wait_for_callback_is_a_child_with_a_callback_and_a_step(requests_of):
    def body(ctx: Context, handed: list[str]) -> Any:
        return ctx.step.wait_for_callback("w", handed.append)

    costs = extra(requests_of, body, lambda rt, handed: rt.complete_callback(handed[0], 1))
    # The scope's STARTED and final records, the callback, the submit step (4 puts), and
    # what a callback's completion and wait cost (above).
    assert costs == {"GetItem": 1, "PutItem": 4 + 1 + 2, "Query": 1, "UpdateItem": 1}


def test_a_poll_is_one_put_per_check(requests_of):
    def body(ctx: Context, handed: list[str]) -> Any:
        return ctx.step.wait_for_condition(
            "p", lambda n: n + 1, initial_state=0, until=lambda n: n >= 3, interval="10s"
        )

    costs = extra(requests_of, body, lambda rt, handed: rt.advance(timedelta(minutes=1)))
    # 3 checks (3 puts); each of the 2 sleeps between them: the run's suspension write,
    # the claim on waking, and the Query that loads the run.
    assert costs == {"PutItem": 3 + 2 * 2, "Query": 2}


class _Text:
    def serialize(self, value: Any) -> str:
        return str(value)

    def deserialize(self, text: str) -> Any:
        return int(text)
