"""Long-running workers: the queues' handlers in threads, in real time.

`stepline dev` and `stepline worker` use this where Lambda is not available: one thread
per queue long-polls it and hands each batch to its handler (as an SQS event source
mapping would), and on a moto endpoint a pump thread fires due Scheduler schedules
(moto never does): timers, and the recurring schedules of the app's Crons at their ticks
(infra/local/cron_pump.py; ticks over 5 minutes late, missed while the pump was not
running, are skipped), on the services' clock. Several worker processes on one endpoint
are safe: runs are guarded by conditional writes and leases, a schedule fired twice is a
harmless stale wake-up, and a tick fired twice starts one run.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from infra.lambda_batch import LambdaFunction
from infra.lambda_functions import BY_QUEUE
from infra.local import lambda_service
from infra.local.cron_pump import CronPump
from infra.wiring import Services

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("stepline.worker")


@dataclass
class QueueSet:
    """URLs and ARNs of the queues a worker serves (work, events), by role."""

    urls: dict[str, str]
    arns: dict[str, str] = field(default_factory=dict)

    @classmethod
    def discover(cls, sqs: SQSClient, urls: dict[str, str]) -> QueueSet:
        arns = {
            role: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            for role, url in urls.items()
        }
        return cls(urls=urls, arns=arns)


class Worker:
    def __init__(
        self,
        services: Services,
        queues: QueueSet,
        *,
        fire_schedules: bool,
        poll_seconds: int = 1,
        visibility_timeout: int = 30,
        lambda_timeout: timedelta = timedelta(minutes=15),
    ) -> None:
        # The handlers extend their messages' visibility by this much while they work.
        self.services = replace(
            services,
            settings=services.settings.model_copy(
                update={"visibility_timeout": visibility_timeout}
            ),
        )
        self.queues = queues
        self.fire_schedules = fire_schedules
        self.poll_seconds = poll_seconds
        self.visibility_timeout = visibility_timeout
        self.lambda_timeout = lambda_timeout
        self.stop_event = threading.Event()
        self.processed: dict[str, int] = dict.fromkeys(queues.urls, 0)
        self._threads: list[threading.Thread] = []
        self._crons: CronPump | None = None

    def start(self) -> None:
        for role, url in self.queues.urls.items():
            self.services.queue_urls.add(self.queues.arns[role], url)
        for role in self.queues.urls:
            thread = threading.Thread(
                target=self._serve,
                args=(role, BY_QUEUE[role]),
                name=f"stepline-{role}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        if self.fire_schedules:
            thread = threading.Thread(target=self._pump, name="stepline-timers", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30) -> None:
        """Stop polling; a batch being handled is finished first."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)

    def _serve(self, role: str, handler: LambdaFunction) -> None:
        sqs = self.services.clients.sqs
        while not self.stop_event.is_set():
            try:
                result = lambda_service.deliver_batch(
                    sqs,
                    queue_url=self.queues.urls[role],
                    queue_arn=self.queues.arns[role],
                    role=role,
                    handler=handler,
                    services=self.services,
                    lambda_timeout=self.lambda_timeout,
                    visibility_timeout=self.visibility_timeout,
                    wait_seconds=self.poll_seconds,
                )
                self.processed[role] += result.received - len(result.failed)
            except Exception as error:
                log.warning("%s queue: polling failed (%s); retrying in a second", role, error)
                self.stop_event.wait(1)
            except BaseException as error:
                # Whatever ends one batch (a step's sys.exit(), say) must not end the
                # thread silently: the worker would stay up and serve nothing.
                log.error("%s queue: a batch ended in %r; serving on", role, error)

    def fire_due(self) -> int:
        """Fire what is due by the services' clock, as Scheduler would: the timers'
        one-time schedules and the ticks of the Crons' recurring ones (the pump thread
        calls this every second). Returns how many messages it sent."""
        settings = self.services.settings
        url_of = {self.queues.arns[role]: url for role, url in self.queues.urls.items()}
        if self._crons is None:
            self._crons = CronPump(
                self.services.clients.scheduler,
                self.services.clients.sqs,
                group=settings.schedule_group,
                queue_url_of=url_of,
                max_late=timedelta(minutes=5),
            )
        now = self.services.ports.clock.now()
        fired = self._crons.fire_due(now)
        return fired + lambda_service.fire_due_schedules(
            self.services.clients.scheduler,
            self.services.clients.sqs,
            group=settings.schedule_group,
            now=now,
            queue_url_of=url_of,
        )

    def _pump(self) -> None:
        while not self.stop_event.wait(1):
            try:
                self.fire_due()
            except Exception as error:
                log.warning("timer pump failed (%s); retrying in a second", error)
