"""What the dashboard reads and does, apart from HTTP: one `Backend` per dashboard.

It connects like the CLI (infra/local/cli/common.py: an endpoint, or real AWS with the
user's credentials and the `STEPLINE_*` settings) and needs nothing deployed beyond the
stack itself. The app (`MODULE:APP`) is optional: it names the workflows' triggers and
cancel rules on the workflows page and lets replay start runs; without one (a stack the
dashboard has no code for) those parts say so. Against `stepline dev` the app is the
one the dev server records (infra/local/devinfo.py).

Actions are the engine's own operations (engine/lifecycle.py, engine/control.py); a
redrive moves a dead-letter queue's messages back to the queue whose redrive policy
names it (receive, send, delete: what SQS's move task does, and what moto lacks).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.control import RunControl
from engine.model import RunRecord
from engine.operator_model import WorkflowControl
from engine.ports import LoadedRun
from infra.dynamo import DynamoStore
from infra.local.browse import RunFilter
from infra.local.cli.common import Connection
from infra.local.events_feed import EventRow, recent_events
from infra.wiring import Services
from sdk import App

log = logging.getLogger("stepline.ui")

#: How many recent runs the workflows page counts by status.
COUNTED_RUNS = 2_000


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    receive_count: str
    sent_at: datetime | None


@dataclass(frozen=True)
class DeadLetterQueue:
    role: str
    url: str
    source_url: str | None
    count: int
    messages: list[DeadLetter]


@dataclass(frozen=True)
class WorkflowSummary:
    workflow_id: str
    counts: dict[str, int]
    control: WorkflowControl | None
    definition: Any  # sdk.Workflow, when the app is known


class Backend:
    def __init__(
        self,
        connection: Connection,
        *,
        app_provider: Callable[[], App | None] = lambda: None,
    ) -> None:
        self.connection = connection
        self._app_provider = app_provider
        self._services: dict[str, Services] = {}

    # -- what it is connected to ---------------------------------------------------------

    @property
    def store(self) -> DynamoStore:
        return self.connection.store

    @property
    def app(self) -> App | None:
        try:
            return self._app_provider()
        except Exception as error:  # a broken app file must not take the dashboard down
            log.warning("the app could not be loaded: %s", error)
            return None

    def where(self) -> str:
        settings = self.connection.settings
        place = settings.endpoint_url or f"AWS {settings.region or ''}".strip()
        return f"table {settings.table} at {place}"

    def services(self) -> Services:
        app = self.app
        key = "app" if app is not None else "none"
        if key not in self._services or self._services[key].app is not app:
            self._services[key] = self.connection.services(app)
        return self._services[key]

    def control(self) -> RunControl:
        services = self.services()
        return RunControl(services.ports, services.lifecycle)

    # -- reads ---------------------------------------------------------------------------

    def runs(self, run_filter: RunFilter, cursor: str | None, limit: int = 50) -> Any:
        return run_filter.page(self.store, cursor=cursor, limit=limit)

    def load(self, run_id: str) -> LoadedRun | None:
        return self.store.load(run_id)

    def children(self, loaded: LoadedRun) -> dict[str, RunRecord]:
        ids = [
            step.invoke.child_run_id for step in loaded.steps.values() if step.invoke is not None
        ]
        return self.store.runs_of(ids) if ids else {}

    def events(self, name: str | None, limit: int = 50) -> list[EventRow]:
        app = self.app
        extra: set[str] = set()
        if app is not None:
            for workflow in app.workflows.values():
                extra.update(trigger.event for trigger in workflow.triggers)
                extra.update(rule.event for rule in workflow.cancel_on)
        return recent_events(
            self.store, names={name} if name else None, extra_names=extra, limit=limit
        )

    def workflows(self) -> list[WorkflowSummary]:
        page = self.store.browse_runs(limit=COUNTED_RUNS, with_events=False)
        counts: dict[str, Counter[str]] = {}
        for run in page.runs:
            counts.setdefault(run.workflow_id, Counter())[run.status.value] += 1
        app = self.app
        ids = set(counts) | (set(app.workflows) if app is not None else set())
        return [
            WorkflowSummary(
                workflow_id=workflow_id,
                counts=dict(counts.get(workflow_id, Counter())),
                control=self.store.get_workflow_control(workflow_id),
                definition=app.get(workflow_id) if app is not None else None,
            )
            for workflow_id in sorted(ids)
        ]

    def dead_letters(self, peek: int = 10) -> list[DeadLetterQueue]:
        sqs = self.connection.clients.sqs
        queues = []
        for role, source_url in sorted(self._source_queues().items()):
            dlq_url = self._dlq_of(source_url)
            if dlq_url is None:
                continue
            attributes = sqs.get_queue_attributes(
                QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            messages = []
            if int(attributes.get("ApproximateNumberOfMessages", "0")):
                received = sqs.receive_message(
                    QueueUrl=dlq_url,
                    MaxNumberOfMessages=min(10, peek),
                    VisibilityTimeout=0,
                    AttributeNames=["All"],
                ).get("Messages", [])
                for message in received:
                    sent = message.get("Attributes", {}).get("SentTimestamp")
                    messages.append(
                        DeadLetter(
                            message_id=message["MessageId"],
                            body=message["Body"],
                            receive_count=message.get("Attributes", {}).get(
                                "ApproximateReceiveCount", "?"
                            ),
                            sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
                        )
                    )
            queues.append(
                DeadLetterQueue(
                    role=role,
                    url=dlq_url,
                    source_url=source_url,
                    count=int(attributes.get("ApproximateNumberOfMessages", "0")),
                    messages=messages,
                )
            )
        return queues

    def _source_queues(self) -> dict[str, str]:
        """The queues whose dead letters are shown: those found on an endpoint, or on
        real AWS the stack's outputs as `stepline worker` reads them (the work queue, and
        the events queue if `STEPLINE_EVENTS_QUEUE_URL` is set)."""
        urls = dict(self.connection.queue_urls)
        if not urls:
            if self.connection.settings.work_queue_url:
                urls["work"] = self.connection.settings.work_queue_url
            events_url = os.environ.get("STEPLINE_EVENTS_QUEUE_URL")
            if events_url:
                urls["events"] = events_url
        return urls

    def _dlq_of(self, source_url: str) -> str | None:
        sqs = self.connection.clients.sqs
        policy = sqs.get_queue_attributes(QueueUrl=source_url, AttributeNames=["RedrivePolicy"])[
            "Attributes"
        ].get("RedrivePolicy")
        if not policy:
            return None
        arn = json.loads(policy)["deadLetterTargetArn"]
        account, name = arn.split(":")[4], arn.split(":")[5]
        return sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]

    # -- actions -------------------------------------------------------------------------

    def cancel(self, run_id: str) -> bool:
        return self.services().lifecycle.cancel(run_id, "cancelled from the dashboard")

    def pause(self, run_id: str) -> bool:
        return self.control().pause(run_id, "paused from the dashboard")

    def resume(self, run_id: str) -> bool:
        return self.control().resume(run_id)

    def replay(self, run_id: str, from_step: str | None) -> str:
        """The new run's id. KeyError: unknown run or step; ValueError: not finished or no app."""
        app = self.app
        loaded = self.store.load(run_id)
        if loaded is None:
            raise KeyError(f"no run {run_id!r}")
        if app is None:
            raise ValueError("replay needs the app's code: start the dashboard with --app")
        workflow = app.get(loaded.run.workflow_id)
        if workflow is None:
            raise ValueError(f"app {app.name!r} has no workflow {loaded.run.workflow_id!r}")
        return self.services().lifecycle.replay(workflow, run_id, from_step=from_step)

    def pause_workflow(self, workflow_id: str) -> None:
        self.control().pause_workflow(workflow_id, "paused from the dashboard")

    def resume_workflow(self, workflow_id: str) -> list[str]:
        return self.control().resume_workflow(workflow_id)

    def redrive(self, role: str) -> int:
        """Move every message of `role`'s dead-letter queue back to its queue."""
        source_url = self._source_queues().get(role)
        dlq_url = self._dlq_of(source_url) if source_url else None
        if source_url is None or dlq_url is None:
            raise KeyError(f"no dead-letter queue for {role!r}")
        sqs = self.connection.clients.sqs
        moved = 0
        for _ in range(1000):
            messages = sqs.receive_message(
                QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=60
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                sqs.send_message(QueueUrl=source_url, MessageBody=message["Body"])
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
        log.info("redrove %d message(s) from %s to %s", moved, dlq_url, source_url)
        return moved
