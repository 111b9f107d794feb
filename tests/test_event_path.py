"""One path for events: the bus delivers each event Stepline uses once, to one queue, whose
one function starts runs, resolves waits and cancels runs with it; events whose names
the app does not use never reach Stepline.

The rules are real: LocalRuntime syncs them onto moto's bus as a deploy does
(infra/event_rules.py), and moto's EventBridge delivers through their patterns.
"""

from __future__ import annotations

import json
import re

import pytest

from engine.errors import TransientError
from engine.event_names import routed_event_names
from infra.event_rules import MAX_PATTERN_CHARS, EventRules, chunked_patterns, names_in
from infra.local import LocalRuntime
from sdk import App, CancelOn, Context, Event
from tests.conftest import START


def _shop() -> App:
    app = App("path")

    @app.workflow(
        "order", trigger="order/placed", cancel_on=[CancelOn("order/voided", match="data.id")]
    )
    def order(ctx: Context) -> str:
        paid = ctx.step.wait_for_event("paid", event="order/paid", timeout="1d", match="data.id")
        return "paid" if paid else "unpaid"

    @app.workflow("audit", trigger="order/paid")
    def audit(ctx: Context) -> str:
        return ctx.step.run("note", lambda: f"audited {ctx.event.data['id']}")

    @app.workflow("computed", trigger="kind/chosen")
    def computed(ctx: Context) -> bool:
        # The name is computed: only the run that reaches this wait knows it.
        name = "/".join(["dynamic", ctx.event.data["kind"]])
        return ctx.step.wait_for_event("w", event=name, timeout="1h") is not None

    return app


def _rules(rt: LocalRuntime) -> dict[str, set[str]]:
    listed = rt.clients.events.list_rules(EventBusName=rt.settings.event_bus)["Rules"]
    return {rule["Name"]: names_in(rule["EventPattern"]) for rule in listed}


def test_the_rules_list_exactly_the_names_the_app_uses_and_no_name_twice():
    with LocalRuntime(_shop(), start=START) as rt:
        rules = _rules(rt)
        routed = [name for names in rules.values() for name in names]
        assert len(routed) == len(set(routed))  # each event is delivered once
        assert set(routed) == {
            "order/placed",  # a trigger
            "order/voided",  # a cancel_on rule
            "order/paid",  # a literal wait_for_event name (and a trigger)
            "kind/chosen",
            "stepline/callback.completed",  # callbacks are answered from the bus
            "stepline/callback.failed",
            "stepline/callback.heartbeat",
        }
        [rule] = rules
        assert re.fullmatch(rf"{rt.settings.table}-events-[0-9a-f]{{8}}-0", rule)


def test_one_delivery_of_an_event_starts_a_run_resolves_a_wait_and_another_cancels():
    with LocalRuntime(_shop(), start=START) as rt:
        [first] = rt.send(Event(name="order/placed", data={"id": 1}))
        [second] = rt.send(Event(name="order/placed", data={"id": 2}))
        assert rt.deliveries["events"] == 2

        # One event: it starts the audit run AND resolves the first order's wait.
        [audit] = rt.send(Event(name="order/paid", data={"id": 1}))
        assert rt.deliveries["events"] == 3
        assert rt.run(first).output == "paid"
        assert rt.run(audit).output == "audited 1"

        rt.send(Event(name="order/voided", data={"id": 2}))
        assert rt.deliveries["events"] == 4
        assert rt.run(second).status == "CANCELLED"


def test_an_event_whose_name_a_run_computes_is_routed_before_its_wait_registers():
    with LocalRuntime(_shop(), start=START) as rt:
        before = _rules(rt)
        [run_id] = rt.send(Event(name="kind/chosen", data={"kind": "gold"}))
        assert rt.run(run_id).status == "WAITING"
        # The engine added a rule of its own for the name, on the stack's bus.
        added = {name: names for name, names in _rules(rt).items() if name not in before}
        [(rule, names)] = added.items()
        assert names == {"dynamic/gold"} and rule.startswith(f"{rt.settings.table}-event-")

        rt.send(Event(name="dynamic/gold", data={}))
        assert rt.run(run_id).output is True

        # A second run waiting on the same name adds no rule.
        [again] = rt.send(Event(name="kind/chosen", data={"kind": "gold"}, id="again"))
        assert len(_rules(rt)) == len(before) + 1
        rt.send(Event(name="dynamic/gold", data={}))
        assert rt.run(again).output is True


def test_a_deploy_that_spells_a_routed_name_out_moves_it_and_never_delivers_twice():
    with LocalRuntime(_shop(), start=START) as rt:
        [run_id] = rt.send(Event(name="kind/chosen", data={"kind": "gold"}))
        assert any(rule.startswith(f"{rt.settings.table}-event-") for rule in _rules(rt))

        # The next version waits on the name with a literal: the deploy routes it.
        v2 = _shop()

        @v2.workflow("gold", trigger="gold/start")
        def gold(ctx: Context) -> bool:
            return ctx.step.wait_for_event("g", event="dynamic/gold", timeout="1h") is not None

        rt.deploy(v2)
        rules = _rules(rt)
        assert not any(rule.startswith(f"{rt.settings.table}-event-") for rule in rules)
        assert sum("dynamic/gold" in names for names in rules.values()) == 1

        delivered = rt.deliveries["events"]
        rt.send(Event(name="dynamic/gold", data={}))
        assert rt.deliveries["events"] == delivered + 1
        assert rt.run(run_id).output is True


def test_a_part_that_fails_does_not_stop_the_others_and_the_retry_finishes_it(monkeypatch):
    with LocalRuntime(_shop(), start=START) as rt:
        [first] = rt.send(Event(name="order/placed", data={"id": 1}))
        router = rt.services.router
        trigger = router.trigger
        failures = []

        def flaky(event: Event) -> list[str]:
            if event.name == "order/paid" and not failures:
                failures.append(event.id)
                raise TransientError("DynamoDB throttled (simulated)")
            return trigger(event)

        monkeypatch.setattr(router, "trigger", flaky)
        rt.clients.events.put_events(
            Entries=[
                {
                    "Source": "my.app",
                    "DetailType": "order/paid",
                    "Detail": json.dumps({"id": 1}),
                    "EventBusName": rt.settings.event_bus,
                }
            ]
        )
        rt.drain()
        # The first delivery resolved the wait though starting the audit run failed; the
        # event came back (the failed record only) and its redelivery started it, once.
        assert len(failures) == 1 and rt.run(first).output == "paid"
        assert rt.deliveries["events"] == 3
        [audit] = rt.runs(workflow="audit")
        assert audit.status == "COMPLETED" and rt.dead_letter_count("events") == 0


def test_many_names_fill_several_rules_each_within_eventbridges_pattern_limit():
    names = [f"tenant-{n:04d}/something.happened" for n in range(300)]
    patterns = chunked_patterns(names)
    assert len(patterns) > 1
    assert all(len(pattern) <= MAX_PATTERN_CHARS for pattern in patterns)
    listed = [name for pattern in patterns for name in json.loads(pattern)["detail-type"]]
    assert sorted(listed) == sorted(names)
    with pytest.raises(ValueError, match="too long for an EventBridge pattern"):
        chunked_patterns(["x" * 3000])


def test_a_smaller_app_deletes_the_rules_it_no_longer_needs():
    big = App("big")
    for n in range(200):
        big.workflow(f"w{n}", trigger=f"tenant-{n:04d}/something.happened")(lambda ctx: None)
    with LocalRuntime(big, start=START) as rt:
        assert len(_rules(rt)) > 1
        small = App("small")
        small.workflow("only", trigger="only/this")(lambda ctx: None)
        rt.deploy(small)
        assert list(_rules(rt).values()) == [set(routed_event_names(small))]
        assert rt.send(Event(name="tenant-0001/something.happened", data={})) == []
        assert rt.deliveries["events"] == 0


def test_rules_are_synced_idempotently():
    with LocalRuntime(_shop(), start=START) as rt:
        rules = EventRules(
            rt.clients.events,
            bus=rt.settings.event_bus,
            prefix=rt.settings.table,
            queue_arn=rt.settings.events_queue_arn,
        )
        report = rules.sync(routed_event_names(rt.app))
        assert report.created == report.updated == report.deleted == ()
        assert len(report.unchanged) == 1


SHIPPED = "order/shipped"


def test_a_wait_on_a_module_constant_or_a_closures_name_is_routed_at_deploy():
    app = App("names")
    refunded = "order/refunded"

    @app.workflow("ship", trigger="order/placed")
    def ship(ctx: Context) -> None:
        ctx.step.wait_for_event("shipped", event=SHIPPED, timeout="1d")
        ctx.step.wait_for_event("refunded", event=refunded, timeout="1d")

    assert {SHIPPED, refunded} <= set(routed_event_names(app))


def test_a_deploy_that_changes_the_names_makes_the_new_rules_before_deleting_the_old():
    with LocalRuntime(_shop(), start=START) as rt:
        calls: list[str] = []
        rt.clients.events.meta.events.register(
            "provide-client-params.events.*",
            lambda params, model, **_: calls.append(f"{model.name} {params.get('Name', '')}"),
        )
        v2 = _shop()
        v2.workflow("extra", trigger="order/extra")(lambda ctx: None)
        rt.deploy(v2)
        puts = [i for i, call in enumerate(calls) if call.startswith("PutRule")]
        deletes = [i for i, call in enumerate(calls) if call.startswith("DeleteRule")]
        # THEN the old rule went only once the new one (listing every name) was in place
        assert puts and deletes and max(puts) < min(deletes)
        [names] = _rules(rt).values()
        assert "order/extra" in names and "order/placed" in names


def test_after_a_deploy_drops_a_literal_name_a_run_that_computes_it_still_gets_its_event():
    v1 = App("drop")

    @v1.workflow("w", trigger="w/start")
    def spelled(ctx: Context) -> bool:
        return ctx.step.wait_for_event("x", event="late/x", timeout="1h") is not None

    v2 = App("drop")

    @v2.workflow("w", trigger="w/start")
    def computed(ctx: Context) -> bool:
        name = "late/" + ctx.event.data["suffix"]
        return ctx.step.wait_for_event("x", event=name, timeout="1h") is not None

    with LocalRuntime(v1, start=START) as rt:
        rt.deploy(v2)  # "late/x" is no longer spelt out: its deploy no longer routes it
        assert not any("late/x" in names for names in _rules(rt).values())
        [run_id] = rt.send(Event(name="w/start", data={"suffix": "x"}))
        # The engine knows the new app's names, so it routes the computed one itself
        assert any(names == {"late/x"} for names in _rules(rt).values())
        rt.send(Event(name="late/x", data={}))
        assert rt.run(run_id).output is True
