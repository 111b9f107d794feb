"""No DynamoDB key is shared by all runs of a workflow, all events of a name or all runs
of a month: such keys are spread over shards, and what reads them merges the shards.

DynamoDB serves about 1,000 write units a second per partition key, so a key every run
start or every event of a name writes would cap the whole app there. These tests read
the table as DynamoDB would partition it.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from engine.ids import run_id_for
from infra.local import LocalRuntime
from sdk import App, CancelOn, Context, Event
from tests.conftest import START


def _app() -> App:
    app = App("hot")

    @app.workflow("signup", trigger="user/signed-up", cancel_on=[CancelOn("user/left")])
    def signup(ctx: Context) -> str:
        got = ctx.step.wait_for_event("any-approval", event="ops/approved", timeout="1d")
        return "approved" if got else "timed out"

    @app.workflow("listener", trigger="never/sent")
    def listener(ctx: Context) -> None:
        # Makes "noise/ping" a name the app uses, so that the bus routes it.
        ctx.step.wait_for_event("ping", event="noise/ping", timeout="1d", match="data.i")

    return app


def _partition_keys(rt: LocalRuntime, index: str | None = None) -> Counter[str]:
    """How many items each partition key holds (of the table, or of an index)."""
    keys: Counter[str] = Counter()
    kwargs = {"TableName": rt.settings.table}
    if index:
        kwargs["IndexName"] = index
    paginator = rt.clients.dynamodb.get_paginator("scan")
    for page in paginator.paginate(**kwargs):
        for item in page["Items"]:
            keys[item["g2pk" if index else "pk"]["S"]] += 1
    return keys


def test_run_starts_events_and_match_less_waits_spread_over_many_keys():
    with LocalRuntime(_app(), start=START) as rt:
        # GIVEN 24 runs of one workflow, each waiting without `match` and with a
        # match-less cancel rule, and 24 events of one name
        run_ids = [
            rt.send(Event(name="user/signed-up", data={"user": f"u{i}"}, id=f"s{i}"))[0]
            for i in range(24)
        ]
        for i in range(24):
            rt.send(Event(name="noise/ping", data={"i": i}, id=f"p{i}"))
        table = _partition_keys(rt)
        runs_index = _partition_keys(rt, "runs")

        def spread(prefix: str, counts: Counter[str]) -> tuple[int, int]:
            mine = {key: n for key, n in counts.items() if key.startswith(prefix)}
            return len(mine), max(mine.values(), default=0)

        # THEN each of those families of items is spread over many keys, none holding
        # more than a fraction of them
        for prefix, counts in (
            ("RUNS#", runs_index),
            ("WAIT#ops/approved#*", table),
            ("CANCEL#signup#0#*", table),
            ("EVLOG#noise/ping#", table),
        ):
            keys, busiest = spread(prefix, counts)
            assert keys >= 8, f"{prefix}: only {keys} keys"
            assert busiest <= 8, f"{prefix}: one key holds {busiest} of 24"

        # AND one match-less event still finds every wait across the shards
        rt.send(Event(name="ops/approved", data={}))
        assert {rt.run(run_id).output for run_id in run_ids} == {"approved"}


def test_listing_merges_the_shards_newest_first_across_months():
    app = App("hot")

    @app.workflow("noop", trigger="thing/happened")
    def noop(ctx: Context) -> str:
        return "done"

    with LocalRuntime(app, start=START) as rt:
        # GIVEN runs created over two months
        created = []
        for i in range(14):
            created.append(rt.send(Event(name="thing/happened", data={}, id=f"t{i}"))[0])
            rt.advance(timedelta(days=3))
        # THEN the newest come first, in order, from every shard and both months
        listed = rt.runs(limit=5)
        assert [run.run_id for run in listed] == created[::-1][:5]
        everything = rt.runs(limit=100)
        assert [run.run_id for run in everything] == created[::-1]
        assert len({f"{run.created_at:%Y-%m}" for run in everything}) >= 2
        # AND a unique prefix of an id still finds its run
        target = created[7]
        assert rt.services.store.run_ids_with_prefix(target[:12]) == [target]


def _approvals() -> App:
    app = App("hot")

    @app.workflow("approve", trigger="doc/submitted")
    def approve(ctx: Context) -> str:
        ctx.step.sleep("prepare", "1h")
        got = ctx.step.wait_for_event("ok", event="doc/approved", match="data.doc", timeout="1d")
        return got.data["by"] if got else "timed out"

    return app


def test_a_wait_on_a_long_known_path_looks_back_at_its_own_key_alone(requests_of):
    with LocalRuntime(_approvals(), start=START) as rt:
        # GIVEN the path data.doc has been waited on for a day
        rt.send(Event(name="doc/submitted", data={"doc": "first"}))
        rt.advance(timedelta(days=1, hours=2))
        # AND a run whose approval arrives while it sleeps, before its wait exists
        [run_id] = rt.send(Event(name="doc/submitted", data={"doc": "d2"}))
        rt.send(Event(name="doc/approved", data={"doc": "d2", "by": "ann"}))
        # WHEN its wait is registered
        counter = requests_of(rt)
        rt.advance(timedelta(hours=1, minutes=1))
        counter.enabled = False
        # THEN the look-back found the approval, reading the wait's own key, not the 16
        # shards of the name's log (one Query loads the run, one reads the key)
        assert rt.run(run_id).output == "ann"
        assert counter.counts[("dynamodb", "Query")] == 2


def test_the_first_wait_on_a_new_path_still_sees_an_event_from_before_it(requests_of):
    with LocalRuntime(_approvals(), start=START) as rt:
        # GIVEN a run whose approval arrives while it sleeps, before anything ever waited
        # on data.doc (so the event was kept under no wait's key)
        [run_id] = rt.send(Event(name="doc/submitted", data={"doc": "d1"}))
        rt.send(Event(name="doc/approved", data={"doc": "d1", "by": "ann"}))
        # WHEN its wait is registered
        counter = requests_of(rt)
        rt.advance(timedelta(hours=1, minutes=1))
        counter.enabled = False
        # THEN the look-back read the name's whole log and found it
        assert rt.run(run_id).output == "ann"
        assert counter.counts[("dynamodb", "Query")] > 16


def _any_approval() -> App:
    app = App("hot")

    @app.workflow("approve-any", trigger="doc/submitted")
    def approve(ctx: Context) -> str:
        ctx.step.sleep("prepare", "1h")
        got = ctx.step.wait_for_event("ok", event="ops/approved", timeout="1d")
        return got.data["by"] if got else "timed out"

    return app


def _queried_keys(rt: LocalRuntime) -> list[str]:
    """The partition keys of the Queries the runtime's DynamoDB client makes from now on."""
    seen: list[str] = []

    def capture(params: dict, **_: object) -> None:
        values = params.get("ExpressionAttributeValues", {})
        key = values.get(":pk") or values.get(":k")
        if key is not None:
            seen.append(key["S"])

    rt.services.clients.dynamodb.meta.events.register(
        "provide-client-params.dynamodb.Query", capture
    )
    return seen


def test_a_match_less_wait_looks_back_at_one_column_of_its_names_spread_keys():
    with LocalRuntime(_any_approval(), start=START) as rt:
        # GIVEN waits without match on ops/approved for a day, and 24 approvals since
        rt.send(Event(name="doc/submitted", data={"doc": "first"}))
        rt.advance(timedelta(days=1, hours=2))
        [run_id] = rt.send(Event(name="doc/submitted", data={"doc": "d2"}))
        for i in range(24):
            rt.send(Event(name="ops/approved", data={"by": f"op{i}"}, id=f"a{i}"))
            rt.advance(timedelta(seconds=1))
        # THEN each approval was kept on one row of the name's grid (4 keys), the rows
        # spread so that no key holds more than a fraction of them
        grid = {
            key: count
            for key, count in _partition_keys(rt).items()
            if key.startswith("EVKEY#WAIT#ops/approved#*#")
        }
        assert sum(grid.values()) == 24 * 4
        assert len(grid) >= 8 * 4 and max(grid.values()) <= 8

        # WHEN the run's wait is registered
        queried = _queried_keys(rt)
        rt.advance(timedelta(hours=1))
        # THEN its look-back read one column of the grid (16 keys, no shard of the name's
        # log) and found the first approval since the run began
        assert rt.run(run_id).output == "op0"
        looked = [key for key in queried if key.startswith("EVKEY#")]
        assert len(looked) == 16 and not any(k.startswith("EVLOG#") for k in queried)
        columns = {int(key.rsplit("#", 1)[1]) % 4 for key in looked}
        assert len(columns) == 1


def _cancellable() -> App:
    app = App("hot")

    @app.workflow(
        "order",
        trigger="order/placed",
        cancel_on=[CancelOn("order/voided", match="data.id"), CancelOn("shop/closed")],
    )
    def order(ctx: Context) -> str:
        ctx.step.sleep("ship", "1h")
        return "shipped"

    return app


def test_a_runs_cancel_rules_look_back_at_their_own_keys_once_known():
    with LocalRuntime(_cancellable(), start=START) as rt:
        # GIVEN runs with these cancel rules for a day (their paths are known)
        rt.send(Event(name="order/placed", data={"id": 0}))
        rt.advance(timedelta(days=1, hours=2))
        # WHEN a run starts whose cancelling event was handled a moment before its rules
        # existed (its id matches), and another whose events are someone else's
        queried = _queried_keys(rt)
        response = rt.clients.events.put_events(
            Entries=[
                {
                    "Source": "s",
                    "DetailType": name,
                    "Detail": data,
                    "EventBusName": rt.settings.event_bus,
                }
                for name, data in (
                    ("order/voided", '{"id": 7}'),
                    ("order/placed", '{"id": 7}'),
                    ("order/placed", '{"id": 8}'),
                )
            ]
        )
        rt.drain()
        # THEN the first is cancelled by the earlier event, the other carries on
        _, seven, eight = (entry["EventId"] for entry in response["Entries"])
        assert rt.run(run_id_for("order", seven)).status == "CANCELLED"
        assert rt.run(run_id_for("order", eight)).status == "SLEEPING"
        # AND their look-backs read their rules' keys (the id's key, one column of the
        # match-less key's grid), never a shard of the names' logs
        assert not any(key.startswith("EVLOG#") for key in queried)
        assert any(key.startswith("EVKEY#WAIT#order/voided#data.id#7") for key in queried)
