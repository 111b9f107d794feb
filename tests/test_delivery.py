"""At-least-once delivery: duplicates, races and crashes never double-advance a run."""

from __future__ import annotations

import threading
from datetime import timedelta

from engine.model import Delivery, StepStatus, WorkMessage
from examples import app as shop
from examples import services
from infra.local import LocalRuntime
from sdk import App, Context, Event
from tests.conftest import START
from tests.faults import crash_once, wrap_store


def onboarding_final_state(rt, run_id):
    run = rt.run(run_id)
    return run.status, run.output, [(s.id, s.status, s.attempts) for s in rt.history(run_id)]


def test_every_message_delivered_twice_reaches_the_same_final_state():
    def run_onboarding(deliveries):
        services.reset()
        with LocalRuntime(shop, start=START, deliveries_per_message=deliveries) as rt:
            [run_id] = rt.send(Event(name="user/signup", data={"userId": "u1"}, id="evt-1"))
            rt.advance(timedelta(days=9))
            return onboarding_final_state(rt, run_id), list(services.mailer.sent)

    once, mail_once = run_onboarding(1)
    twice, mail_twice = run_onboarding(2)
    thrice, mail_thrice = run_onboarding(3)
    assert once == twice == thrice
    assert once[0] == "COMPLETED"
    # Duplicated deliveries did not duplicate side effects: each step ran once.
    assert mail_once == mail_twice == mail_thrice == [("u1", "welcome"), ("u1", "reminder")]
    services.reset()


def test_two_engine_invocations_racing_on_one_run_record_each_step_once(
    effects, atomic_aws_requests
):
    app = App("t")
    gate = threading.Barrier(2, timeout=10)

    @app.workflow("race", trigger="go")
    def flow(ctx: Context) -> int:
        total = 0
        for index in range(5):
            total += ctx.step.run(f"s{index}", lambda i=index: effects.record(f"s{i}") or i)
        return total

    with LocalRuntime(app, start=START) as rt:
        run_id = rt.services.lifecycle.start_run(app.get("race"), Event(name="go", id="e1"))
        # Take the queued start message away from the pump and race two invocations on it.
        rt.clients.sqs.purge_queue(QueueUrl=rt.queue_urls["work"])
        runner = rt.services.runner

        def invoke(message_id):
            gate.wait()
            runner.handle(
                WorkMessage(run_id=run_id, reason="start"),
                Delivery(message_id=message_id),
                lambda: 900.0,
            )

        threads = [threading.Thread(target=invoke, args=(f"m{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rt.drain()
        run = rt.run(run_id)
        assert run.status == "COMPLETED" and run.output == 10
        steps = rt.history(run_id)
        assert [s.id for s in steps] == ["s0", "s1", "s2", "s3", "s4"]
        assert all(s.attempts == 1 and s.status == StepStatus.COMPLETED for s in steps)
        # The lease let one invocation through; the other left the run alone.
        assert all(count == 1 for count in effects.calls.values())


def test_a_crash_between_running_a_step_and_recording_it_reruns_the_step_once(effects):
    app = App("t")

    @app.workflow("fragile", trigger="go")
    def flow(ctx: Context) -> str:
        ctx.step.run("before", lambda: effects.record("before"))
        ctx.step.run("charge", lambda: effects.record("charge") or "charged")
        ctx.step.run("after", lambda: effects.record("after"))
        return "done"

    crash = crash_once(lambda name, args, kwargs: name == "put_step" and args[1].id == "charge")
    with LocalRuntime(app, start=START, ports_hook=wrap_store(before=crash)) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert crash.state["fired"]
        assert rt.crashed_batches == 1
        run = rt.run(run_id)
        assert run.status == "COMPLETED"
        # The step's code ran twice (the crash fell in its window) but was recorded once.
        assert effects.calls == {"before": 1, "charge": 2, "after": 1}
        assert [(s.id, s.attempts) for s in rt.history(run_id)] == [
            ("before", 1),
            ("charge", 1),
            ("after", 1),
        ]


def test_a_crash_after_recording_a_sleep_before_arming_its_timer_still_wakes_the_run(effects):
    app = App("t")

    @app.workflow("sleepy", trigger="go")
    def flow(ctx: Context) -> str:
        ctx.step.sleep("nap", "2h")
        ctx.step.run("wake", lambda: effects.record("wake"))
        return "done"

    def crash_before_timer(name, args, kwargs):
        return name == "write_run" and args[0].status.value == "SLEEPING"

    # Crash right after the suspension is written, before its timer is armed.
    crash = crash_once(crash_before_timer)
    with LocalRuntime(app, start=START, ports_hook=wrap_store(after=crash)) as rt:
        [run_id] = rt.send(Event(name="go"))
        assert crash.state["fired"]
        assert rt.run(run_id).status == "SLEEPING"
        rt.advance(timedelta(hours=2, seconds=2))
        assert rt.run(run_id).status == "COMPLETED"
        assert effects["wake"] == 1


def test_a_heartbeat_finds_a_queues_url_from_its_arn_without_asking_aws():
    from infra.visibility import QueueUrls

    def no_calls() -> None:
        raise AssertionError("no AWS call expected on AWS: the URL follows from the ARN")

    urls = QueueUrls(no_calls)
    assert (
        urls.url_of("arn:aws:sqs:eu-west-1:123456789012:shop-waits")
        == "https://sqs.eu-west-1.amazonaws.com/123456789012/shop-waits"
    )
