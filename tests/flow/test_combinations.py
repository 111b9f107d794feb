"""Flow controls combined, on moto: DESIGN.md's example with all ten controls on one
workflow, and how batching composes with the per-event controls (sdk/_flow.py).

- idempotency and the rate limit refuse single events before they join a batch;
- debounce puts off a ready batch until the debounce key of its first event is quiet;
- singleton, priority, concurrency and throttle keys and `cancel_on` are those of the
  batch's first event (`ctx.event`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from engine.flow import describe
from infra.local import LocalRuntime
from sdk import (
    App,
    Batch,
    CancelOn,
    Concurrency,
    Context,
    Debounce,
    Event,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
)
from tests.conftest import START
from tests.flow.helpers import crash_once, outcome


class Accounts:
    """What the steps of batched runs saw: the runs executing per account at once (the
    most), and, once, something to do while a step of a given run executes."""

    def __init__(self) -> None:
        self.executing: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.during: dict[str, Callable[[], None]] = {}
        self.lock = threading.Lock()

    def work(self, account: str, first_contact: str) -> str:
        with self.lock:
            self.executing[account] = self.executing.get(account, 0) + 1
            self.peak[account] = max(self.peak.get(account, 0), self.executing[account])
        try:
            action = self.during.pop(first_contact, None)
            if action is not None:
                # In a thread of its own, as another Lambda invocation would be.
                thread = threading.Thread(target=action)
                thread.start()
                thread.join()
        finally:
            with self.lock:
                self.executing[account] -= 1
        return account


def design_app(accounts: Accounts) -> App:
    app = App("crm")

    # DESIGN.md, "Flow control", as written there.
    @app.workflow(
        "sync-crm",
        trigger="crm/contact.updated",
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
    def sync(ctx: Context) -> dict:
        contacts = [event.data["contactId"] for event in ctx.events]
        account = ctx.event.data["accountId"]
        first = ctx.event.data["contactId"]
        ctx.step.run("push", accounts.work, account, first)
        return {"contacts": contacts, "account": account}

    return app


def update(event_id: str, account: str, contact: str, plan: str = "free") -> Event:
    return Event(
        name="crm/contact.updated",
        data={"accountId": account, "contactId": contact, "plan": plan},
        id=event_id,
    )


def test_the_design_example_with_all_ten_controls():
    accounts = Accounts()
    # A lease longer than the virtual time a step below spans stands in for the renewals
    # a live holder makes in real time (its slot lives as long as its lease).
    with LocalRuntime(
        design_app(accounts), start=START, settings={"lease": timedelta(hours=1)}
    ) as rt:
        # GIVEN an update of an enterprise contact of account a2: it opens a2's batch
        [b2] = rt.send(update("u4", "a2", "c4", plan="enterprise"))
        rt.advance("1s")
        # AND a second later an update of contact c1 of a1: it opens a1's batch
        [b1] = rt.send(update("u1", "a1", "c1"))
        # WHEN c1 is updated again (another event id): a duplicate by idempotency
        assert rt.send(update("u1-again", "a1", "c1")) == []
        [duplicate] = outcome(rt, "u1-again").skipped
        assert (duplicate.control, duplicate.run_id) == ("idempotency", b1)
        assert duplicate.reason == (
            f'a duplicate of run {b1} by idempotency key event.data.contactId = "c1"'
        )
        # AND c2 of a1 joins the batch; c3 of a1, at the same instant, is rate limited
        # (10 a minute per account, bursts of 2): it joins nothing
        assert rt.send(update("u2", "a1", "c2")) == []
        assert outcome(rt, "u2").skipped[0].reason == (
            f"batched into run {b1} (event 2 of at most 100)"
        )
        assert rt.send(update("u3", "a1", "c3")) == []
        [limited] = outcome(rt, "u3").skipped
        assert limited.control == "rate_limit" and limited.run_id is None
        assert limited.reason.startswith(
            'rate limited: at most 10 runs per 1m for key event.data.accountId = "a1"'
        )
        rt.advance("10s")
        assert rt.send(update("u5", "a1", "c5")) == []  # a1's bucket has room again
        # WHEN the batches' timeout passes
        rt.advance("20s")
        # THEN they are ready but put off by the debounce of their first event's contact
        for run_id in (b1, b2):
            run = rt.run(run_id)
            assert run.status == "QUEUED"
            assert run.waiting.startswith("debounce: the batch is ready")
        assert 'key event.data.contactId = "c1"' in rt.run(b1).waiting
        assert "starts at 2026-03-02 09:05:01" in rt.run(b1).waiting

        # WHEN c1 has been quiet for five minutes; while a1's batch executes, c6 of a1
        # opens the next batch of a1, which becomes ready (debounced) five minutes later
        seen: list[tuple[str, str | None]] = []

        def meanwhile() -> None:
            [b3] = rt.send(update("u6", "a1", "c6"))
            rt.advance("5m30s")
            seen.append((rt.run(b3).status, rt.run(b3).waiting))

        accounts.during["c1"] = meanwhile
        rt.advance("4m30s")
        # THEN a1's next batch waited for a1's concurrency slot while the first held it
        [(status, waiting)] = seen
        assert status == "QUEUED"
        assert waiting is not None and waiting.startswith(
            'concurrency: at most 1 at once (key event.data.accountId = "a1")'
        )
        assert accounts.peak == {"a1": 1, "a2": 1}
        # AND every run ran its batch, with ctx.events, ctx.event its first
        runs = {run.run_id: run for run in rt.runs(workflow="sync-crm")}
        assert [run.status for run in runs.values()] == ["COMPLETED"] * 3
        assert runs[b1].output == {"contacts": ["c1", "c2", "c5"], "account": "a1"}
        assert runs[b2].output == {"contacts": ["c4"], "account": "a2"}
        [b3] = [run_id for run_id in runs if run_id not in (b1, b2)]
        assert runs[b3].output == {"contacts": ["c6"], "account": "a1"}
        # AND the second batch of a1 started only once the first had finished
        assert rt.history(b3)[0].started_at >= START + timedelta(minutes=10, seconds=31)
        assert rt.history(b1)[0].started_at == START + timedelta(minutes=5, seconds=1)
        assert rt.history(b2)[0].started_at == START + timedelta(minutes=5)


def test_workflows_list_says_how_the_debounce_applies_to_batches():
    lines = describe.controls(design_app(Accounts()).get("sync-crm"))
    assert lines[3] == (
        "debounce: a ready batch waits until no event came for 5m per "
        "event.data.contactId of its first event, at most 1h"
    )


def batching(**controls) -> tuple[App, list[str]]:
    app = App("logs")
    started: list[str] = []

    @app.workflow(
        "record",
        trigger="api/call",
        batch_events=controls.pop("batch_events", Batch(max_size=3, timeout="30s")),
        **controls,
    )
    def record(ctx: Context) -> list:
        numbers = [event.data["n"] for event in ctx.events]
        ctx.step.run("write", started.append, ctx.run_id)
        if ctx.event.data.get("nap"):
            ctx.step.sleep("nap", "10m")
        return numbers

    return app, started


def call(n: int, **data) -> Event:
    return Event(name="api/call", data={"n": n, "user": "u1", **data}, id=f"c{n}")


def test_debounce_puts_off_a_ready_batch_until_its_first_events_key_is_quiet():
    app, _ = batching(debounce=Debounce(period="2m", key="event.data.user"))
    with LocalRuntime(app, start=START) as rt:
        # GIVEN a batch of user u1 opened at 9:00, and u1 busy until 9:01
        [run_id] = rt.send(call(1))
        rt.advance("1m")
        rt.send(call(2))
        # WHEN the batch's timeout passes, it waits for two quiet minutes after 9:01
        rt.advance("30s")
        assert rt.run(run_id).status == "QUEUED"
        assert rt.run(run_id).waiting.startswith("debounce: the batch is ready")
        # AND while put off, it still takes events (it is not full), which move the quiet
        rt.advance("1m")
        assert rt.send(call(3)) == []
        rt.advance("1m59s")
        assert rt.run(run_id).status == "QUEUED"
        # THEN it starts two minutes after the last event of its key, with all three
        rt.advance("1s")
        assert rt.run(run_id).status == "COMPLETED"
        assert rt.run(run_id).output == [1, 2, 3]
        assert rt.history(run_id)[0].started_at == START + timedelta(minutes=4, seconds=30)


def test_a_crash_while_a_ready_batch_starts_waiting_for_quiet_is_repaired_by_the_redelivery():
    # GIVEN an engine killed right after it armed the timer of a ready batch's debounce,
    # before it wrote that the run waits
    quiet_at = START + timedelta(minutes=2)
    crash = crash_once("timers", lambda name, args, kwargs: name == "arm" and args[1] == quiet_at)
    app, started = batching(debounce=Debounce(period="2m", key="event.data.user"))
    with LocalRuntime(app, start=START, ports_hook=crash) as rt:
        [run_id] = rt.send(call(1))
        rt.advance("30s")
        assert crash.state["fired"]
        # THEN the redelivered message put it to wait all the same, and it ran once
        assert rt.run(run_id).waiting.startswith("debounce: the batch is ready")
        rt.advance("90s")
        assert rt.run(run_id).status == "COMPLETED"
        assert started == [run_id]
        assert rt.history(run_id)[0].started_at == quiet_at


def test_debounce_timeout_caps_how_long_a_ready_batch_is_put_off():
    debounce = Debounce(period="2m", key="event.data.user", timeout="5m")
    app, _ = batching(
        debounce=debounce, batch_events=Batch(max_size=2, timeout="10s", key="event.data.n")
    )
    with LocalRuntime(app, start=START) as rt:
        # GIVEN a steady stream of u1 events, one a minute, each in a batch of its own key
        [first] = rt.send(call(0))
        for n in range(1, 8):
            rt.advance("1m")
            rt.send(call(n))
        # THEN the first batch started five minutes after the first event of the burst
        assert rt.history(first)[0].started_at == START + timedelta(minutes=5)


def test_events_left_out_of_batches_are_debounced_each_on_its_own():
    app, _ = batching(
        debounce=Debounce(period="1m", key="event.data.user"),
        batch_events=Batch(max_size=5, timeout="10s", if_="event.data.n < 100"),
    )
    with LocalRuntime(app, start=START) as rt:
        [batched] = rt.send(call(1))
        [debounced] = rt.send(call(100))
        assert rt.send(call(101)) == []
        assert outcome(rt, "c101").skipped[0].reason == f"debounced into run {debounced}"
        rt.advance("2m")
        assert rt.run(batched).output == [1]
        assert rt.run(debounced).output == [101]  # the last event, as a debounce does


def test_a_singleton_is_checked_by_the_event_that_opens_a_batch():
    app, _ = batching(singleton=Singleton(key="event.data.user", mode="skip"))
    with LocalRuntime(app, start=START) as rt:
        # GIVEN a batch of u1 that ran and now sleeps (its run has not finished)
        [first] = rt.send(call(1, nap=True))
        rt.send(call(2))
        rt.send(call(3))
        assert rt.run(first).status == "SLEEPING"
        # WHEN another u1 event would open the next batch
        assert rt.send(call(4)) == []
        # THEN it is skipped by the singleton, with the reason
        [skipped] = outcome(rt, "c4").skipped
        assert (skipped.control, skipped.run_id) == ("singleton", first)
        # AND once the run finished, the next event opens a batch again
        rt.advance("10m")
        assert rt.run(first).status == "COMPLETED"
        [second] = rt.send(call(5))
        rt.advance("30s")
        assert rt.run(second).output == [5]


def test_a_negative_priority_delays_a_batch_past_its_timeout():
    app, _ = batching(priority=Priority(run="event.data.n == 1 ? -120 : 0"))
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(call(1))
        rt.advance("1m")
        assert rt.run(run_id).status == "QUEUED"
        rt.advance("1m")
        assert rt.run(run_id).status == "COMPLETED"
        assert rt.history(run_id)[0].started_at == START + timedelta(minutes=2)


def test_cancel_on_matches_the_batchs_first_event():
    app, started = batching(
        batch_events=Batch(max_size=3, timeout="30s"),
        cancel_on=[CancelOn("api/stop", match="data.user")],
    )
    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(call(1))
        rt.send(call(2, user="u2"))
        rt.send(Event(name="api/stop", data={"user": "u2"}, id="s2"))
        assert rt.run(run_id).status == "QUEUED"  # u2 is not its first event's user
        rt.send(Event(name="api/stop", data={"user": "u1"}, id="s1"))
        assert rt.run(run_id).status == "CANCELLED"
        # AND the next event opens a new batch rather than joining the cancelled run
        [next_run] = rt.send(call(3, user="u3"))
        rt.advance("1m")
        assert started == [next_run]
        assert rt.run(next_run).output == [3]
