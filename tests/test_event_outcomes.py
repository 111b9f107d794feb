"""What each event did: the trigger handler's durable record (`EventOutcome`), which
`stepline send` prints and a dashboard can read: the runs it started, the runs its id
had already started, or why it started none."""

from __future__ import annotations

from datetime import timedelta

from engine.testing import FakeCluster
from infra.local import LocalRuntime
from sdk import App, Context, Event, Trigger
from tests.conftest import START


def shop() -> App:
    app = App("shop")

    @app.workflow("welcome", trigger="user/signup")
    def welcome(ctx: Context) -> str:
        return ctx.step.run("mail", lambda: "sent")

    @app.workflow("crm", trigger="user/signup")
    def crm(ctx: Context) -> str:
        return ctx.step.run("sync", lambda: "synced")

    @app.workflow("upsell", trigger=Trigger("user/upgrade", if_="event.data.plan == 'pro'"))
    def upsell(ctx: Context) -> str:
        return "offered"

    return app


def test_the_record_says_which_runs_an_event_started_or_why_none():
    with LocalRuntime(shop(), start=START) as rt:
        store = rt.services.store
        started = rt.send(Event(name="user/signup", data={"userId": "u1"}, id="signup-u1"))
        outcome = store.get_outcome("signup-u1", now=rt.now())
        assert outcome is not None
        assert set(outcome.started) == set(started) and len(started) == 2
        assert outcome.existing == () and outcome.reason is None
        assert outcome.event_name == "user/signup" and outcome.at == rt.now()

        # The same id again: a duplicate, which started nothing new.
        assert set(rt.send(Event(name="user/signup", data={}, id="signup-u1"))) == set(started)
        again = store.get_outcome("signup-u1", now=rt.now())
        assert again.started == () and set(again.existing) == set(started)
        assert again.summary().startswith("started nothing new: event id 'signup-u1' is a dup")
        # Told apart from the first record, the first send's runs are the duplicate's.
        assert outcome.summary().startswith("started runs ")
        assert again.summary(outcome).startswith("started nothing new")

        # A name no workflow uses is not routed to Stepline at all: nothing records it
        # (`stepline send` says why from the bus's rules; see tests/test_cli.py).
        assert rt.send(Event(name="user/signup-typo", id="typo")) == []
        assert store.get_outcome("typo", now=rt.now()) is None

        rt.send(Event(name="user/upgrade", data={"plan": "free"}, id="upgrade-free"))
        unmatched = store.get_outcome("upgrade-free", now=rt.now())
        assert unmatched.run_ids == ()
        [skipped] = unmatched.skipped
        assert skipped.workflow_id == "upsell"
        assert unmatched.summary() == (
            "started nothing: upsell: trigger condition not met: event.data.plan == 'pro'"
        )


def test_the_record_is_one_write_per_event_however_many_runs_it_starts():
    writes: list[str] = []

    def note(params, **_):
        if params.get("Item", {}).get("pk", {}).get("S", "").startswith("EVENT#"):
            writes.append(params["Item"]["pk"]["S"])

    with LocalRuntime(shop(), start=START) as rt:
        rt.services.clients.dynamodb.meta.events.register(
            "provide-client-params.dynamodb.PutItem", note
        )
        assert len(rt.send(Event(name="user/signup", data={}, id="two-runs"))) == 2
        assert len(writes) == 1
        rt.send(Event(name="user/upgrade", data={"plan": "free"}, id="no-run"))
        assert len(writes) == 2


def test_an_event_id_too_long_for_a_key_is_recorded_under_its_hash():
    # The longest id an event may have (512 characters), in 4-byte characters: 2,048
    # bytes, over what DynamoDB takes in a key attribute.
    long_id = "\U0001f600" * 512
    with LocalRuntime(shop(), start=START) as rt:
        [*_] = rt.send(Event(name="user/upgrade", data={"plan": "free"}, id=long_id))
        outcome = rt.services.store.get_outcome(long_id, now=rt.now())
        assert outcome is not None and outcome.event_id == long_id
        assert rt.dead_letter_count("events") == 0
        assert rt.services.store.get_outcome(long_id[:-1], now=rt.now()) is None


def test_the_record_expires_after_the_lookback_window():
    with LocalRuntime(shop(), start=START, settings={"lookback": timedelta(hours=1)}) as rt:
        rt.send(Event(name="user/signup", data={}, id="old"))
        assert rt.services.store.get_outcome("old", now=rt.now()) is not None
        later = rt.now() + timedelta(hours=1, seconds=1)
        assert rt.services.store.get_outcome("old", now=later) is None


def test_the_in_memory_fake_keeps_the_same_record():
    cluster = FakeCluster(shop(), start=START)
    run_ids = cluster.send(Event(name="user/signup", data={}, id="e1"))
    outcome = cluster.store.get_outcome("e1", now=cluster.clock.now())
    assert outcome is not None and set(outcome.started) == set(run_ids)
    cluster.send(Event(name="user/signup", data={}, id="e1"))
    assert set(cluster.store.get_outcome("e1", now=cluster.clock.now()).existing) == set(run_ids)
    expired = cluster.clock.now() + timedelta(days=2)
    assert cluster.store.get_outcome("e1", now=expired) is None
