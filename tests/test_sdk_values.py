"""Durations, retry timing, events and expressions: the SDK's value types."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdk import CancelOn, Event, Retry, Trigger, WorkflowDefinitionError, parse_duration


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10s", timedelta(seconds=10)),
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("24 hours", timedelta(hours=24)),
        ("2 days", timedelta(days=2)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_duration_strings(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "10", "ten minutes", "5 fortnights", "-5s", "h"])
def test_malformed_durations_explain_the_format(bad):
    with pytest.raises(WorkflowDefinitionError, match="'30m'"):
        parse_duration(bad)


def test_numbers_are_refused_because_their_unit_is_ambiguous():
    with pytest.raises(WorkflowDefinitionError, match="not a string or timedelta"):
        parse_duration(30)  # type: ignore[arg-type]


@given(
    attempt=st.integers(min_value=2, max_value=30),
    unit=st.floats(min_value=0, max_value=0.999999),
    jitter=st.floats(min_value=0, max_value=1),
)
def test_retry_delays_grow_exponentially_within_jitter_and_the_cap(attempt, unit, jitter):
    policy = Retry(max_attempts=50, initial_delay="2s", max_delay="10m", factor=3, jitter=jitter)
    delay = policy.delay_before(attempt, unit).total_seconds()
    base = min(2 * 3 ** (attempt - 2), 600)
    assert base * (1 - jitter) - 1e-6 <= delay <= min(base * (1 + jitter), 600) + 1e-6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"factor": 0.5}, "factor"),
        ({"jitter": 2}, "jitter"),
        ({"initial_delay": "1h", "max_delay": "1m"}, "max_delay"),
        ({"initial_delay": "soon"}, "initial_delay"),
    ],
)
def test_bad_retry_policies_are_refused(kwargs, message):
    with pytest.raises(WorkflowDefinitionError, match=message):
        Retry(**kwargs)


def test_cel_expressions_compile_at_definition_time():
    with pytest.raises(WorkflowDefinitionError, match="does not compile"):
        Trigger("user/signup", if_="event.data.plan ==")
    with pytest.raises(WorkflowDefinitionError, match="does not compile"):
        CancelOn("app/user.deleted", if_="async.data.userId ==== 1")


def test_cancel_on_match_must_be_a_data_path():
    with pytest.raises(WorkflowDefinitionError, match="field path"):
        CancelOn("app/user.deleted", match="userId")


def test_trigger_expression_sees_the_event():
    trigger = Trigger("user/signup", if_="event.data.plan == 'pro'")
    assert trigger.if_.evaluate(event=Event(name="user/signup", data={"plan": "pro"}))
    assert not trigger.if_.evaluate(event=Event(name="user/signup", data={"plan": "free"}))


def test_events_reject_blank_names():
    with pytest.raises(ValueError, match="not blank"):
        Event(name="   ")
