"""Security properties a user would check before trusting Stepline with real data."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from engine.ids import waiter_key
from engine.model import Delivery, StepKind, StepRecord, StepStatus, WaitSpec, WorkMessage
from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START
from tests.reliability.figures import add

SECRET = "4111-1111-1111-1111"


def secretive_app() -> App:
    app = App("sec")

    @app.workflow("pay", trigger="pay")
    def pay(ctx: Context) -> dict:
        card = ctx.event.data["card"]
        token = ctx.step.run("tokenize", lambda: {"token": "tok_1", "card": card})
        ctx.step.sleep("settle", "1m")
        return {"token": token["token"], "echo": card}

    return app


def test_payloads_and_step_outputs_never_reach_the_log_at_info(caplog):
    with LocalRuntime(secretive_app(), start=START) as rt, caplog.at_level(logging.INFO):
        [run_id] = rt.send(Event(name="pay", data={"card": SECRET}))
        rt.advance(timedelta(minutes=2))
        assert rt.run(run_id).status == "COMPLETED"
    assert caplog.records, "expected the engine to log at INFO"
    assert all(SECRET not in record.getMessage() for record in caplog.records)


def test_debug_logging_of_events_masks_the_configured_fields(caplog):
    with (
        LocalRuntime(
            secretive_app(), start=START, settings={"redact_fields": ("card", "email")}
        ) as rt,
        caplog.at_level(logging.DEBUG, "stepline"),
    ):
        rt.send(Event(name="pay", data={"card": SECRET, "amount": 12}))
    debug_lines = [r.getMessage() for r in caplog.records if "data:" in r.getMessage()]
    assert debug_lines, "event data is logged at DEBUG"
    assert all(SECRET not in line for line in debug_lines)
    assert any("'card': '***'" in line and "'amount': 12" in line for line in debug_lines)


def waiting_app() -> App:
    app = App("sec")

    @app.workflow("approval", trigger="doc/submitted")
    def approval(ctx: Context) -> str | None:
        got = ctx.step.wait_for_event(
            "approved", event="doc/approved", match="data.doc", timeout="1d"
        )
        return got.data["by"] if got else None

    return app


def test_a_forged_work_message_cannot_advance_or_resolve_a_waiting_run():
    with LocalRuntime(waiting_app(), start=START) as rt:
        [run_id] = rt.send(Event(name="doc/submitted", data={"doc": 1}))
        assert rt.run(run_id).status == "WAITING"
        before = rt.history(run_id)
        runner = rt.services.runner
        for reason, at in (("event", None), ("child", None), ("timer", START), ("start", None)):
            runner.handle(
                WorkMessage(run_id=run_id, reason=reason, at=at),
                Delivery(message_id=f"forged-{reason}"),
                lambda: 900.0,
            )
        add("bad inputs tried", 4)
        assert rt.run(run_id).status == "WAITING"
        assert rt.history(run_id) == before
        # The genuine event still resolves it.
        rt.send(Event(name="doc/approved", data={"doc": 1, "by": "ann"}))
        assert rt.run(run_id).output == "ann"


def test_work_messages_cannot_name_an_action_the_engine_does_not_take():
    with pytest.raises(ValueError, match="reason"):
        WorkMessage.model_validate_json('{"run_id": "r", "reason": "cancel"}')
    with pytest.raises(ValueError, match="resolve"):
        WorkMessage.model_validate_json('{"run_id": "r", "reason": "event", "resolve": {"x": 1}}')


def test_an_event_resolves_only_waits_it_matches_even_through_a_stray_index_entry():
    """Run A's wait filed under run B's index key (a stale, colliding or tampered index
    attribute) must not let B's event resolve A: the resolver re-checks every candidate
    against the wait's own spec."""
    with LocalRuntime(waiting_app(), start=START) as rt:
        [run_a] = rt.send(Event(name="doc/submitted", data={"doc": "a"}))
        [run_b] = rt.send(Event(name="doc/submitted", data={"doc": "b"}))
        a_wait = rt.services.store.get_step(run_a, "00000")
        item = rt.services.store._entry_item(
            run_a,
            waiter_key("doc/approved", "data.doc", "b"),
            a_wait.record,
            a_wait.revision.token,
        )
        rt.clients.dynamodb.put_item(TableName=rt.settings.table, Item=item)
        assert len(rt.services.store.find_waiters(waiter_key("doc/approved", "data.doc", "b"))) == 2

        rt.send(Event(name="doc/approved", data={"doc": "b", "by": "mallory"}))
        add("bad inputs tried")
        assert rt.run(run_b).output == "mallory"
        assert rt.run(run_a).status == "WAITING"
        assert rt.history(run_a)[0].status == "WAITING"


def test_cancelling_needs_the_runs_own_match_value():
    app = App("sec")
    from sdk import CancelOn

    @app.workflow("drip", trigger="start", cancel_on=[CancelOn("stop", match="data.user")])
    def drip(ctx: Context) -> str:
        ctx.step.sleep("wait", "1d")
        return "done"

    with LocalRuntime(app, start=START) as rt:
        [alice] = rt.send(Event(name="start", data={"user": "alice"}))
        [bob] = rt.send(Event(name="start", data={"user": "bob"}))
        for forged in (
            {"user": "ALICE"},
            {"user": ["alice"]},
            {"user": None},
            {},
            {"user": "alice "},
        ):
            rt.send(Event(name="stop", data=forged))
            add("bad inputs tried")
        assert rt.run(alice).status == "SLEEPING"
        rt.send(Event(name="stop", data={"user": "bob"}))
        assert rt.run(bob).status == "CANCELLED"
        assert rt.run(alice).status == "SLEEPING"


def test_a_step_record_for_another_run_is_never_used(tmp_path):
    """Records are keyed by run: a record written under run A's partition is invisible
    to run B even with the same step position and id."""
    with LocalRuntime(waiting_app(), start=START) as rt:
        [run_a] = rt.send(Event(name="doc/submitted", data={"doc": 1}))
        store = rt.services.store
        fake = StepRecord(
            key="00000",
            id="approved",
            kind=StepKind.WAIT,
            status=StepStatus.COMPLETED,
            output=Event(name="doc/approved", data={"doc": 2, "by": "mallory"}, id="x").model_dump(
                mode="json"
            ),
            wait=WaitSpec(event="doc/approved", index_key="k", since=START),
        )
        store.put_step("some-other-run", fake, expected=None)
        rt.advance(timedelta(hours=2))
        assert rt.run(run_a).status == "WAITING"
