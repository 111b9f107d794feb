"""Playing EventBridge Scheduler for recurring schedules: cron ticks on a local clock.

moto keeps schedules but never fires them. `CronPump` fires the `cron-*` schedules of a
group (those infra/cron_schedules.py keeps for the app's Crons) as Scheduler would: at
each tick of the schedule's expression in its time zone (with Scheduler's rules for
daylight-saving changes, sdk/_cron.py), it sends the target's input to the target queue
with `<aws.scheduler.scheduled-time>` replaced by the tick. The trigger handler then
starts the runs (engine/cron.py), exactly as on a deployment, superset ticks included.

It keeps, per schedule, the next tick it owes: ticks fire from when the pump first sees
a schedule, never for the time before (Scheduler does not backfill either). LocalRuntime
asks `next_due` so that `advance` stops at every tick; `stepline dev` calls `fire_due`
every second with the wall clock, and skips ticks later than `max_late` (a laptop that
slept through a night of per-minute ticks does not start them all on waking).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from infra.cron_schedules import PREFIX, SCHEDULED_TIME, standard_cron
from sdk import Cron, WorkflowDefinitionError

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("stepline.worker")


@dataclass
class _Recurring:
    cron: Cron
    target_arn: str
    input: str
    due: datetime | None


class CronPump:
    def __init__(
        self,
        scheduler: EventBridgeSchedulerClient,
        sqs: SQSClient,
        *,
        group: str,
        queue_url_of: dict[str, str],
        max_late: timedelta | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._sqs = sqs
        self._group = group
        self._queue_url_of = queue_url_of
        self._max_late = max_late
        self._schedules: dict[str, _Recurring] = {}
        #: How many ticks the pump has sent.
        self.fired = 0

    def refresh(self, now: datetime) -> None:
        """Pick up schedules created since the last look (due from `now`), drop deleted
        or disabled ones."""
        enabled: set[str] = set()
        token: str | None = None
        while True:  # every page: run timers share the group and may fill the first ones
            kwargs: dict[str, Any] = {"GroupName": self._group, "NamePrefix": PREFIX}
            if token:
                kwargs["NextToken"] = token
            listed = self._scheduler.list_schedules(**kwargs)
            enabled.update(
                s["Name"]
                for s in listed.get("Schedules", [])
                if s["Name"].startswith(PREFIX) and s.get("State", "ENABLED") == "ENABLED"
            )
            token = listed.get("NextToken")
            if not token:
                break
        for name in set(self._schedules) - enabled:
            del self._schedules[name]
        for name in enabled - set(self._schedules):
            recurring = self._load(name, now)
            if recurring is not None:
                self._schedules[name] = recurring

    def _load(self, name: str, now: datetime) -> _Recurring | None:
        try:
            schedule = self._scheduler.get_schedule(Name=name, GroupName=self._group)
        except self._scheduler.exceptions.ResourceNotFoundException:
            return None
        try:
            cron = Cron(
                standard_cron(schedule["ScheduleExpression"]),
                schedule.get("ScheduleExpressionTimezone") or "UTC",
            )
        except (ValueError, WorkflowDefinitionError) as error:
            log.warning("schedule %s cannot be fired locally: %s", name, error)
            return None
        target = schedule["Target"]
        return _Recurring(cron, target["Arn"], target.get("Input", ""), cron.next_tick(now))

    def next_due(self, now: datetime) -> datetime | None:
        """The earliest tick owed by any schedule (looking for new schedules first)."""
        self.refresh(now)
        dues = [s.due for s in self._schedules.values() if s.due is not None]
        return min(dues) if dues else None

    def fire_due(self, now: datetime) -> int:
        """Send every tick due by `now`; returns how many were sent."""
        self.refresh(now)
        fired = 0
        for name, schedule in sorted(self._schedules.items()):
            while schedule.due is not None and schedule.due <= now:
                tick = schedule.due
                schedule.due = schedule.cron.next_tick(tick)
                if self._max_late is not None and tick < now - self._max_late:
                    log.info("skipping tick %s of %s: the pump was not running", tick, name)
                    continue
                body = schedule.input.replace(SCHEDULED_TIME, f"{tick:%Y-%m-%dT%H:%M:%SZ}")
                url = self._queue_url_of[schedule.target_arn]
                self._sqs.send_message(QueueUrl=url, MessageBody=body)
                fired += 1
        self.fired += fired
        return fired
