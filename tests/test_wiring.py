"""A function creates only the boto3 clients it uses (infra/clients.py, infra/wiring.py)."""

from __future__ import annotations

from datetime import timedelta

from infra.clients import Clients
from infra.lambda_functions import handle_events, handle_work
from infra.local import LocalRuntime, lambda_service
from infra.wiring import build_services
from sdk import App, Context
from tests.conftest import START


def created(clients: Clients) -> set[str]:
    """The clients created so far: each is a cached property, stored on first use."""
    return {name for name in ("dynamodb", "sqs", "scheduler", "events") if name in vars(clients)}


def test_the_trigger_function_creates_no_scheduler_client_and_the_engine_does_when_it_needs_one():
    app = App("clients")

    @app.workflow("nap", trigger="user/signup")
    def nap(ctx: Context) -> str:
        ctx.step.sleep("long", "2h")  # past SQS's 15 minutes: a Scheduler schedule
        return "rested"

    with LocalRuntime(app, start=START) as rt:
        # GIVEN a cold process's services and an event on the events queue
        clients = Clients(rt.settings)
        services = build_services(app, rt.settings, clock=rt.clock, clients=clients)
        assert created(clients) == {"dynamodb"}  # the store is built with the services
        rt.clients.events.put_events(
            Entries=[
                {
                    "Source": "test",
                    "DetailType": "user/signup",
                    "Detail": "{}",
                    "EventBusName": rt.settings.event_bus,
                }
            ]
        )

        def deliver(role: str) -> lambda_service.BatchResult:
            url = rt.queue_urls[role]
            return lambda_service.deliver_batch(
                rt.clients.sqs,
                queue_url=url,
                queue_arn=rt._arn_of[url],
                role=role,
                handler={"events": handle_events, "work": handle_work}[role],
                services=services,
                lambda_timeout=timedelta(minutes=15),
                visibility_timeout=300,
            )

        # WHEN the events function starts the run
        result = deliver("events")

        # THEN it used DynamoDB and SQS, and never created a Scheduler or EventBridge client
        assert (result.received, result.failed) == (1, [])
        assert created(clients) == {"dynamodb", "sqs"}

        # AND the engine, running the run into its 2-hour sleep, creates the Scheduler client
        assert (deliver("work").received, rt.pending_schedules() != []) == (1, True)
        assert created(clients) == {"dynamodb", "sqs", "scheduler"}
        [run] = rt.runs()
        assert run.status == "SLEEPING"
