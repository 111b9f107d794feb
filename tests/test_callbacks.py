"""Callbacks: `create_callback` / `wait_for_callback`, answered from outside by their id.

From LocalRuntime (`complete_callback`, `fail_callback`, `heartbeat_callback`), and as a
deployed stack's other systems do, with an event on the bus (`stepline/callback.*`).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from engine.ids import parse_callback_id
from infra.local import LocalRuntime
from sdk import App, AsyncContext, CallbackError, Context, Event, StepError
from tests.conftest import START
from tests.faults import FaultPlan, SimulatedCrash, crash_once, wrap_store


def approval_app(handed: list[str], effects, **options: Any) -> App:
    app = App("t")

    @app.workflow("approve", trigger="go")
    def flow(ctx: Context) -> Any:
        cb = ctx.step.create_callback("approval", **options)
        ctx.step.run("ask", lambda: handed.append(cb.id) or effects.record("ask"))
        try:
            return {"decision": cb.result()}
        except StepError as error:
            return {"error": error.error_type, "message": error.error_message}

    return app


def test_a_callback_completed_by_its_id_returns_the_result_to_the_run(effects):
    handed: list[str] = []
    with LocalRuntime(approval_app(handed, effects, timeout="7d"), start=START) as rt:
        # GIVEN a run waiting on a callback whose id it handed to another system
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).status == "WAITING"
        [callback_id] = handed
        # THEN the id carries at least 128 random bits
        _, _, secret = parse_callback_id(callback_id)
        assert len(secret) >= 32 and int(secret, 16) >= 0
        # AND runs show names the callback's id while it waits
        [step, _] = rt.history(run_id)
        assert (step.kind, step.status, step.callback_id) == ("callback", "WAITING", callback_id)
        # WHEN the other system completes it
        rt.complete_callback(callback_id, {"approved": True, "by": "ada"})
        # THEN the run carries on with the result, and the asking step ran once
        assert rt.run(run_id).output == {"decision": {"approved": True, "by": "ada"}}
        assert effects["ask"] == 1


def test_failing_a_callback_raises_step_error_with_the_given_type_and_message(effects):
    handed: list[str] = []
    with LocalRuntime(approval_app(handed, effects), start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.fail_callback(handed[0], error_type="Rejected", error_message="over budget")
        assert rt.run(run_id).output == {"error": "Rejected", "message": "over budget"}


def test_completing_twice_is_refused_and_the_first_result_stands(effects):
    handed: list[str] = []
    with LocalRuntime(approval_app(handed, effects), start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.complete_callback(handed[0], "yes")
        with pytest.raises(CallbackError, match="already completed") as refused:
            rt.complete_callback(handed[0], "no")
        assert refused.value.reason == "completed"
        with pytest.raises(CallbackError, match="already completed"):
            rt.fail_callback(handed[0], error_type="Late")
        assert rt.run(run_id).output == {"decision": "yes"}
        assert rt.history(run_id)[0].output == "yes"


@pytest.mark.parametrize(
    "forge",
    [
        lambda good: "not-a-callback-id",
        lambda good: good[:-1] + ("0" if good[-1] != "0" else "1"),  # another secret
        lambda good: good.rsplit(".", 1)[0] + "." + "f" * 32,
        lambda good: "cb1.eyJub3BlIjoxfQ." + good.rsplit(".", 1)[1],  # the secret elsewhere
        lambda good: "",
    ],
    ids=["garbage", "one-digit-off", "guessed-secret", "moved-secret", "empty"],
)
def test_an_unknown_or_forged_id_is_refused_clearly_and_changes_nothing(effects, forge):
    handed: list[str] = []
    with LocalRuntime(approval_app(handed, effects), start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        with pytest.raises(CallbackError, match="no callback has the id") as refused:
            rt.complete_callback(forge(handed[0]), "forged")
        assert refused.value.reason == "unknown"
        # The message never echoes a secret
        assert handed[0].rsplit(".", 1)[1] not in str(refused.value)
        assert rt.run(run_id).status == "WAITING"


def test_an_id_completes_only_its_own_callback():
    app = App("t")
    ids: dict[str, str] = {}

    @app.workflow("two", trigger="go")
    def flow(ctx: Context) -> list:
        first = ctx.step.create_callback("first")
        second = ctx.step.create_callback("second")
        ids.update(first=first.id, second=second.id)
        return [first.result(), second.result()]

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        # Each id names a different step and holds a different secret
        assert len({ids["first"].rsplit(".", 1)[1], ids["second"].rsplit(".", 1)[1]}) == 2
        rt.complete_callback(ids["second"], 2)
        assert rt.run(run_id).status == "WAITING"
        rt.complete_callback(ids["first"], 1)
        assert rt.run(run_id).output == [1, 2]


def test_a_callback_not_completed_in_time_times_out_and_a_late_completion_is_refused(effects):
    handed: list[str] = []
    with LocalRuntime(approval_app(handed, effects, timeout="1h"), start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(minutes=61))
        output = rt.run(run_id).output
        assert output["error"] == "CallbackTimeoutError"
        assert "not completed within 1:00:00" in output["message"]
        with pytest.raises(CallbackError, match="expired") as refused:
            rt.complete_callback(handed[0], "too late")
        assert refused.value.reason == "expired"


def test_heartbeats_keep_a_callback_alive_and_a_missed_one_times_it_out(effects):
    handed: list[str] = []
    app = approval_app(handed, effects, timeout="1d", heartbeat_timeout="10m")
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        # WHEN the completer heartbeats every 6 minutes for half an hour
        for _ in range(5):
            rt.advance(timedelta(minutes=6))
            rt.heartbeat_callback(handed[0])
        # THEN the callback is still waiting, past three heartbeat timeouts
        assert rt.run(run_id).status == "WAITING"
        assert "heartbeat every 600s" in rt.history(run_id)[0].detail
        # AND WHEN the heartbeats stop, it times out one heartbeat timeout later
        rt.advance(timedelta(minutes=11))
        output = rt.run(run_id).output
        assert output["error"] == "CallbackTimeoutError"
        assert "missed its heartbeat" in output["message"]
        with pytest.raises(CallbackError, match="expired"):
            rt.heartbeat_callback(handed[0])


def test_a_callback_of_a_cancelled_run_is_refused():
    handed: list[str] = []
    with LocalRuntime(approval_app(handed, effects=_Null()), start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.cancel(run_id)
        with pytest.raises(CallbackError, match="cancelled") as refused:
            rt.complete_callback(handed[0], "yes")
        assert refused.value.reason == "cancelled"
        assert rt.history(run_id)[0].status == "CANCELLED"


def test_a_result_that_cannot_be_stored_is_refused():
    handed: list[str] = []
    with LocalRuntime(approval_app(handed, effects=_Null()), start=START) as rt:
        rt.send(Event(name="go"))
        with pytest.raises(CallbackError, match="not JSON-serialisable") as refused:
            rt.complete_callback(handed[0], object())
        assert refused.value.reason == "invalid"
        with pytest.raises(CallbackError, match="the limit is"):
            rt.complete_callback(handed[0], "x" * 400_000)
        # Refused results changed nothing: a good one is still accepted
        rt.complete_callback(handed[0], "fine")


def test_wait_for_callback_runs_the_submitter_as_a_step_then_waits(effects):
    app = App("t")
    handed: list[str] = []

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> Any:
        def submit(callback_id: str) -> str:
            effects.record("submit")
            handed.append(callback_id)
            return "ticket-1"

        return ctx.step.wait_for_callback("review", submit, timeout="1d")

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.complete_callback(handed[0], "lgtm")
        assert rt.run(run_id).output == "lgtm"
        assert effects["submit"] == 1
        assert [(s.id, s.kind, s.depth) for s in rt.history(run_id)] == [
            ("review", "wait_for_callback", 0),
            ("callback", "callback", 1),
            ("submit", "run", 1),
        ]


def test_an_event_on_the_bus_completes_fails_and_heartbeats_by_id(effects):
    # What a deployed system holding only the id does: one event, no Stepline code.
    handed: list[str] = []
    app = approval_app(handed, effects, heartbeat_timeout="10m")
    with LocalRuntime(app, start=START) as rt:
        [completed, failed] = [rt.send(Event(name="go"))[0] for _ in range(2)]
        rt.advance(timedelta(minutes=8))
        for callback_id in handed:
            rt.send(Event(name="stepline/callback.heartbeat", data={"callbackId": callback_id}))
        rt.advance(timedelta(minutes=8))
        rt.send(
            Event(
                name="stepline/callback.completed",
                data={"callbackId": handed[0], "result": {"approved": True}},
            )
        )
        rt.send(
            Event(
                name="stepline/callback.failed",
                data={"callbackId": handed[1], "errorType": "Rejected", "errorMessage": "no"},
            )
        )
        assert rt.run(completed).output == {"decision": {"approved": True}}
        assert rt.run(failed).output == {"error": "Rejected", "message": "no"}
        # The event started no run, and says why
        assert len(rt.runs()) == 2


def test_a_refused_event_is_logged_without_the_secret_and_not_retried(effects, caplog):
    handed: list[str] = []
    with LocalRuntime(approval_app(handed, effects), start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.complete_callback(handed[0], "first")
        rt.send(
            Event(name="stepline/callback.completed", data={"callbackId": handed[0], "result": 2})
        )
        rt.send(
            Event(name="stepline/callback.completed", data={"callbackId": "cb1.x.y", "result": 2})
        )
        rt.send(Event(name="stepline/callback.completed", data={"result": 2}))
        assert rt.run(run_id).output == {"decision": "first"}
        assert rt.dead_letter_count("events") == 0
        assert rt.deliveries["events"] == 4  # "go" and the three answers, each once
        text = caplog.text
        assert "already completed" in text and "no callback has the id" in text
        assert handed[0].rsplit(".", 1)[1] not in text


def test_duplicate_deliveries_of_a_completion_event_complete_it_once(effects):
    handed: list[str] = []
    app = approval_app(handed, effects)
    with LocalRuntime(app, start=START, deliveries_per_message=2) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.send(
            Event(name="stepline/callback.completed", data={"callbackId": handed[0], "result": 1})
        )
        assert rt.run(run_id).output == {"decision": 1}
        assert effects["ask"] == 1


def test_a_crash_after_the_completion_is_written_still_wakes_the_run(effects):
    # GIVEN the events function dies right after writing the completion, before waking the run
    handed: list[str] = []
    crash = crash_once(
        lambda name, args, kwargs: (
            name == "put_step" and args[1].kind == "callback" and args[1].status == "COMPLETED"
        )
    )
    app = approval_app(handed, effects)
    with LocalRuntime(app, start=START, ports_hook=wrap_store(after=crash)) as rt:
        [run_id] = rt.send(Event(name="go"))
        # WHEN the event is delivered again after the crash
        rt.send(
            Event(
                name="stepline/callback.completed", data={"callbackId": handed[0], "result": "ok"}
            )
        )
        # THEN the redelivery recognises its own completion and wakes the run
        assert crash.state["fired"]
        assert rt.run(run_id).output == {"decision": "ok"}


def test_a_crash_between_creating_a_callback_and_suspending_keeps_its_id(effects):
    handed: list[str] = []
    plan = FaultPlan("after-step-record", occurrence=1)
    with LocalRuntime(approval_app(handed, effects), start=START, ports_hook=plan.hook) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert plan.fired == 1
        # The ask step ran twice (a crash after its record... or before): same id both times
        assert len(set(handed)) == 1
        rt.complete_callback(handed[-1], "ok")
        assert rt.run(run_id).output == {"decision": "ok"}


def test_a_callback_completed_before_the_run_suspends_is_not_missed(effects):
    # The other system answers at once, while the invocation is still running.
    app = App("t")
    box: dict[str, LocalRuntime] = {}

    @app.workflow("w", trigger="go")
    def flow(ctx: Context) -> Any:
        cb = ctx.step.create_callback("fast")
        ctx.step.run("ask", lambda: box["rt"].services.callbacks.complete(cb.id, "instant").status)
        return cb.result()

    with LocalRuntime(app, start=START) as rt:
        box["rt"] = rt
        [run_id] = rt.send(Event(name="go"))
        assert rt.run(run_id).output == "instant"


def test_an_async_workflow_awaits_the_result_and_a_serdes_reads_the_text(effects):
    class Reversed:
        def serialize(self, value: Any) -> str:
            return json.dumps(value)[::-1]

        def deserialize(self, text: str) -> Any:
            return json.loads(text[::-1])

    app = App("t")
    handed: list[str] = []

    @app.workflow("w", trigger="go")
    async def flow(ctx: AsyncContext) -> Any:
        cb = await ctx.step.create_callback("cb", serdes=Reversed())
        handed.append(cb.id)
        return await cb.result()

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.complete_callback(handed[0], json.dumps({"x": 1})[::-1])
        assert rt.run(run_id).output == {"x": 1}
        # A replay hands out the same id
        assert len(set(handed)) == 1


class _Null:
    def record(self, *args: Any) -> None:
        pass


def test_simulated_crash_is_not_an_exception():
    assert not issubclass(SimulatedCrash, Exception)
