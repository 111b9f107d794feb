"""Flow controls are checked when the workflow is defined: a bad argument raises
`WorkflowDefinitionError` saying what to write, before any event arrives."""

from __future__ import annotations

import pytest

from sdk import (
    App,
    Batch,
    CancelOn,
    Concurrency,
    Context,
    Debounce,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
    WorkflowDefinitionError,
)


def define(**controls):
    app = App("t")

    @app.workflow("w", trigger="go", **controls)
    def flow(ctx: Context) -> None:
        return None

    return flow


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda: RateLimit(limit=0, period="1m"), "RateLimit limit must be a whole number"),
        (lambda: RateLimit(limit=2.5, period="1m"), "e.g. RateLimit(limit=10"),
        (lambda: RateLimit(limit=10, period="2d"), "RateLimit period must be from 1s to 1d"),
        (lambda: RateLimit(limit=10, period="10"), "Use a timedelta or a string like"),
        (lambda: RateLimit(limit=10, period="1m", key="event.data."), "does not compile"),
        (lambda: Throttle(limit=5, period="1s", burst=6), "Throttle burst must be a whole number"),
        (lambda: Throttle(limit=5, period="8d"), "Throttle period must be from 1s to 7d"),
        (lambda: Debounce(period="500ms"), "Debounce period must be from 1s to 7d"),
        (lambda: Debounce(period="5m", timeout="8d"), "Debounce timeout must be from 1s"),
        (lambda: Batch(max_size=0, timeout="30s"), "Batch max_size must be a whole number"),
        (lambda: Batch(max_size=10, timeout="2h"), "Batch timeout must be from 1s to 1h"),
        (lambda: Batch(max_size=10, timeout="5s", if_="event.data.x =="), "does not compile"),
        (lambda: Concurrency(limit=0), "Concurrency limit must be a whole number"),
        (lambda: Concurrency(limit=2, scope="account"), 'Concurrency scope must be "workflow"'),
        (lambda: Concurrency(limit=2, scope="app"), "needs a key naming the shared limit"),
        (lambda: Priority(run=""), "Priority run must be a CEL expression giving seconds"),
        (lambda: Priority(run="event.data.plan +"), "does not compile"),
        (lambda: Singleton(mode="queue"), 'Singleton mode must be "skip" or "cancel"'),
        (lambda: Timeouts(), "Timeouts needs start, finish or both"),
        (lambda: Timeouts(start="0s"), "Timeouts start must be from 1s"),
        (lambda: RateLimit(limit=1, period="1m", key="async.data.x"), "a key sees the triggering"),
    ],
)
def test_a_bad_argument_says_what_to_write(make, says):
    with pytest.raises(WorkflowDefinitionError) as raised:
        make()
    assert says in str(raised.value)


@pytest.mark.parametrize(
    "controls, says",
    [
        ({"idempotency": 42}, 'idempotency="event.data.orderId"'),
        ({"idempotency": ""}, "the key must be a non-empty CEL expression"),
        ({"rate_limit": "10/m"}, "rate_limit takes RateLimit(...)"),
        ({"throttle": Debounce(period="1m")}, "throttle takes Throttle(...)"),
        ({"concurrency": 5}, "concurrency takes Concurrency(...) or a list of up to two"),
        (
            {"concurrency": [Concurrency(limit=1), Concurrency(limit=2), Concurrency(limit=3)]},
            "at most two concurrency limits",
        ),
        (
            {"concurrency": [Concurrency(limit=1), Concurrency(limit=2)]},
            "the same scope and key",
        ),
    ],
)
def test_a_bad_combination_says_what_to_write(controls, says):
    with pytest.raises(WorkflowDefinitionError) as raised:
        define(**controls)
    assert says in str(raised.value)


def test_event_controls_need_a_trigger():
    app = App("t")
    with pytest.raises(WorkflowDefinitionError, match="this one has no trigger"):

        @app.workflow("w", debounce=Debounce(period="1m"))
        def flow(ctx: Context) -> None:
            return None


def test_the_contract_of_design_md_is_accepted_as_written():
    # All ten controls of DESIGN.md's example on one workflow, as written there.
    flow = define(
        idempotency="event.data.contactId",
        rate_limit=RateLimit(limit=10, period="1m", key="event.data.accountId"),
        throttle=Throttle(limit=5, period="1s", key="event.data.accountId", burst=1),
        debounce=Debounce(period="5m", key="event.data.contactId", timeout="1h"),
        batch_events=Batch(max_size=100, timeout="30s", key="event.data.accountId"),
        concurrency=[Concurrency(limit=5), Concurrency(limit=1, key="event.data.accountId")],
        priority=Priority(run="event.data.plan == 'enterprise' ? 120 : 0"),
        singleton=Singleton(key="event.data.contactId", mode="skip"),
        timeouts=Timeouts(start="10m", finish="1h"),
    )
    controls = flow.flow
    assert controls.rate_limit.limit == 10 and controls.rate_limit.burst == 2
    assert controls.throttle.period.total_seconds() == 1
    assert controls.batch.max_size == 100 and controls.debounce.timeout.total_seconds() == 3600
    assert [c.limit for c in controls.concurrency] == [5, 1]
    assert controls.timeouts.finish.total_seconds() == 3600


@pytest.mark.parametrize(
    "controls",
    [
        {"idempotency": "event.id"},
        {"rate_limit": RateLimit(limit=1, period="1m")},
        {"debounce": Debounce(period="1m", key="event.data.a")},
        {"priority": Priority(run="1")},
        {"singleton": Singleton(key="event.data.a", mode="cancel")},
        {"concurrency": Concurrency(limit=1, key="event.data.a")},
        {"throttle": Throttle(limit=1, period="1s", key="event.data.a")},
        {"timeouts": Timeouts(start="1m")},
    ],
)
def test_batching_combines_with_every_other_control(controls):
    flow = define(batch_events=Batch(max_size=10, timeout="5s"), **controls)
    assert flow.flow.batch is not None


def test_batching_combines_with_cancel_on():
    app = App("t")

    @app.workflow(
        "w",
        trigger="go",
        cancel_on=[CancelOn("stop")],
        batch_events=Batch(max_size=2, timeout="5s"),
    )
    def flow(ctx: Context) -> None:
        return None

    assert flow.flow.batch is not None and flow.cancel_on
