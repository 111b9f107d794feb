"""An event touches only the waits on its own key, however many runs wait on others."""

from __future__ import annotations

from datetime import timedelta

from engine.ids import waiter_key
from engine.model import StepKind, StepRecord, StepStatus, WaitSpec
from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START

EVENT = "order/paid"


def payment_app() -> App:
    app = App("t")

    @app.workflow("await-payment", trigger="order/created")
    def flow(ctx: Context) -> bool:
        paid = ctx.step.wait_for_event("paid", event=EVENT, match="data.orderId", timeout="7d")
        return paid is not None

    return app


def add_waiting_runs(rt, count: int) -> None:
    """Put `count` waits on other orders straight into the table (as the engine would)."""
    rt.services.store.write_steps(
        [
            (
                f"bulk-{index}",
                StepRecord(
                    key="00000",
                    id="paid",
                    kind=StepKind.WAIT,
                    status=StepStatus.WAITING,
                    wake_at=START + timedelta(days=7),
                    wait=WaitSpec(
                        event=EVENT,
                        index_key=waiter_key(EVENT, "data.orderId", f"other-{index}"),
                        match="data.orderId",
                        since=START,
                    ),
                    indexed=True,
                ),
            )
            for index in range(count)
        ]
    )


def cost_of_one_event(waiting_elsewhere: int, requests_of) -> dict[str, object]:
    with LocalRuntime(payment_app(), start=START) as rt:
        [run_id] = rt.send(Event(name="order/created", data={"orderId": "target"}))
        add_waiting_runs(rt, waiting_elsewhere)
        counter = requests_of(rt)

        rt.send(Event(name=EVENT, data={"orderId": "nobody-waits"}))
        unmatched = dict(counter.counts)
        counter.reset()
        rt.send(Event(name=EVENT, data={"orderId": "target"}))
        matched = dict(counter.counts)
        counter.enabled = False

        assert rt.run(run_id).output is True
        still_waiting = len(
            rt.services.store.find_waiters(waiter_key(EVENT, "data.orderId", "other-0"))
        )
        return {"unmatched": unmatched, "matched": matched, "others_untouched": still_waiting}


def dynamodb_only(counts):
    return {op: n for (service, op), n in counts.items() if service == "dynamodb"}


def test_resolving_one_event_costs_the_same_with_10_and_10000_runs_waiting_elsewhere(requests_of):
    small = cost_of_one_event(10, requests_of)
    large = cost_of_one_event(10_000, requests_of)
    assert dynamodb_only(large["matched"]) == dynamodb_only(small["matched"])
    assert dynamodb_only(large["unmatched"]) == dynamodb_only(small["unmatched"])
    assert large["others_untouched"] == 1
    # The figures the closing note reports: requests per event, by operation.
    print("matched:", dynamodb_only(large["matched"]))
    print("unmatched:", dynamodb_only(large["unmatched"]))
