"""`singleton=Singleton(key, mode)`: one unfinished run per key. mode "skip" refuses a new
run while one is unfinished; mode "cancel" cancels the unfinished run for the new one."""

from __future__ import annotations

from engine.flow.ports import CreateRun
from infra.local import LocalRuntime
from sdk import App, Context, Event, Singleton
from tests.conftest import START
from tests.flow.helpers import commits, crash_once, outcome


def app_with(singleton: Singleton) -> App:
    app = App("crm")

    @app.workflow("import", trigger="import/requested", singleton=singleton)
    def run_import(ctx: Context) -> str:
        ctx.step.run("fetch", lambda: "fetched")
        ctx.step.sleep("settle", "10m")
        return ctx.step.run("store", lambda: ctx.event.data["n"])

    return app


def request(n: int, account: str = "a1") -> Event:
    return Event(name="import/requested", data={"account": account, "n": n}, id=f"e{n}")


def test_skip_refuses_a_run_while_one_of_its_key_is_unfinished():
    with LocalRuntime(app_with(Singleton(key="event.data.account")), start=START) as rt:
        # GIVEN an import of account a1 sleeping mid-way
        [first] = rt.send(request(1))
        assert rt.run(first).status == "SLEEPING"
        # WHEN another import of a1 is requested, and one of a2
        assert rt.send(request(2)) == []
        [other] = rt.send(request(3, "a2"))
        # THEN the a1 request started nothing, and says which run it was skipped for
        [entry] = outcome(rt, "e2").skipped
        assert (entry.control, entry.run_id) == ("singleton", first)
        assert entry.reason == (
            f'skipped by singleton: run {first} for key event.data.account = "a1" has not finished'
        )
        assert outcome(rt, "e2").summary() == (
            f"started nothing: import: skipped by singleton: run {first} for key "
            'event.data.account = "a1" has not finished'
        )
        # AND once the first finished, the key is free again
        rt.advance("11m")
        assert [rt.run(run).status for run in (first, other)] == ["COMPLETED"] * 2
        [again] = rt.send(request(4))
        assert again not in (first, other)


def test_cancel_replaces_the_unfinished_run():
    with LocalRuntime(app_with(Singleton(mode="cancel")), start=START) as rt:
        [first] = rt.send(request(1))
        [second] = rt.send(request(2))
        assert rt.run(first).status == "CANCELLED"
        assert rt.run(first).error is not None
        assert f"replaced by run {second}" in str(rt.run(first).to_json())
        rt.advance("11m")
        assert rt.run(second).status == "COMPLETED" and rt.run(second).output == 2


def test_a_redelivered_event_is_not_skipped_by_its_own_run():
    with LocalRuntime(
        app_with(Singleton(key="event.data.account")), start=START, deliveries_per_message=2
    ) as rt:
        [run] = rt.send(request(1))
        assert not outcome(rt, "e1").skipped
        assert len(rt.runs()) == 1
        rt.advance("11m")
        assert rt.run(run).status == "COMPLETED"


def test_a_crash_after_taking_the_key_starts_the_run_once():
    crash = crash_once("flow", commits(CreateRun))
    with LocalRuntime(
        app_with(Singleton(key="event.data.account")), start=START, ports_hook=crash
    ) as rt:
        rt.send(request(1))
        assert crash.state["fired"]
        [run] = rt.runs()
        # the redelivered event found its own run holding the key: not skipped
        assert not outcome(rt, "e1").skipped
        rt.advance("11m")
        assert rt.run(run.run_id).status == "COMPLETED"
        assert [step.attempts for step in rt.history(run.run_id) if step.kind == "run"] == [1, 1]
