"""What `stepline dev` keeps across restarts: its table, pending schedules and queued messages.

moto keeps everything in memory, so the dev server saves what Stepline needs into a
folder (`.stepline/dev-state/` under the project by default) and restores it when it
starts again:

| file | what | how it is read back |
|---|---|---|
| `table.jsonl` | every item of the table (runs, steps, events, indexes' sources) | `BatchWriteItem` |
| `schedules.json` | the Scheduler schedules not yet fired (timers beyond 15 minutes) | `CreateSchedule` |
| `messages.json` | the messages on the four queues, with what is left of their delays | `SendMessage` |
| `meta.json` | when it was saved, and by which app | |

`DevState.save` writes each file to a temporary name and renames it (a crash mid-save
leaves the previous save whole), and only when its content changed. `stepline dev` saves
every `--save-every` seconds (2 by default) and when it stops, so a crash loses at most
the last couple of seconds: an event sent in that time, a step recorded in it (which
then runs again: steps run at least once).

Queued messages are read from moto's own SQS objects (the server runs in this process):
the SQS API cannot read a delayed message, and receiving one counts towards its
dead-letter limit. If that reading fails (a moto that changed shape), messages are not
saved and `reconcile` rebuilds what runs need from the table: each QUEUED run gets a
start message, each sleeping or waiting run its timer, each run an event was resolving a
wake-up, and a run left RUNNING by the dead process is taken over at once (its claim is
marked expired on restore). Every message is an idempotent poke, so one sent twice is
harmless.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.model import EPOCH, RunStatus, WorkMessage
from infra.dynamo_table import RUN_SK
from infra.local.lambda_service import list_schedule_names
from infra.wiring import Services

if TYPE_CHECKING:
    from infra.clients import Clients

log = logging.getLogger("stepline.dev")

DEFAULT_DIRECTORY = Path(".stepline") / "dev-state"
_ACCOUNT = "123456789012"
_FILES = ("table.jsonl", "schedules.json", "messages.json")


@dataclass(frozen=True)
class Restored:
    items: int
    runs: int
    schedules: int
    messages: int

    def describe(self) -> str:
        return (
            f"{self.runs} run(s) ({self.items} items), {self.schedules} pending schedule(s), "
            f"{self.messages} queued message(s)"
        )


class DevState:
    def __init__(
        self,
        directory: Path,
        clients: Clients,
        *,
        table: str,
        schedule_group: str,
        queue_urls: dict[str, str],
        region: str,
    ) -> None:
        self.directory = directory
        self._clients = clients
        self._table = table
        self._group = schedule_group
        self._queue_urls = queue_urls
        self._region = region
        self._digests: dict[str, str] = {}
        self.saves = 0

    @property
    def exists(self) -> bool:
        return (self.directory / "table.jsonl").exists()

    # -- saving --------------------------------------------------------------------------

    def save(self, *, app: str) -> bool:
        """Write what changed since the last save; True if anything was written."""
        self.directory.mkdir(parents=True, exist_ok=True)
        items = "".join(json.dumps(item, sort_keys=True) + "\n" for item in self._scan())
        contents = {
            "table.jsonl": items,
            "schedules.json": json.dumps(self._schedules(), indent=1, sort_keys=True),
        }
        messages = self._messages()
        if messages is not None:
            contents["messages.json"] = json.dumps(messages, indent=1, sort_keys=True)
        changed = False
        for name, text in contents.items():
            digest = hashlib.sha256(text.encode()).hexdigest()
            if self._digests.get(name) == digest and (self.directory / name).exists():
                continue
            _write_atomically(self.directory / name, text)
            self._digests[name] = digest
            changed = True
        if changed:
            meta = {"saved_at": datetime.now(UTC).isoformat(), "app": app}
            _write_atomically(self.directory / "meta.json", json.dumps(meta, indent=1))
            self.saves += 1
        return changed

    def _scan(self) -> list[dict[str, Any]]:
        dynamodb = self._clients.dynamodb
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        while True:
            page = dynamodb.scan(**kwargs)
            items.extend(page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        items.sort(key=lambda item: (item["pk"]["S"], item["sk"]["S"]))
        return items

    def _schedules(self) -> list[dict[str, Any]]:
        scheduler = self._clients.scheduler
        saved = []
        for name in list_schedule_names(scheduler, group=self._group):
            try:
                schedule = scheduler.get_schedule(Name=name, GroupName=self._group)
            except scheduler.exceptions.ResourceNotFoundException:
                continue
            target = schedule["Target"]
            saved.append(
                {
                    "Name": schedule["Name"],
                    "ScheduleExpression": schedule["ScheduleExpression"],
                    "ScheduleExpressionTimezone": schedule.get("ScheduleExpressionTimezone", "UTC"),
                    "Target": {
                        "Arn": target["Arn"],
                        "RoleArn": target["RoleArn"],
                        "Input": target.get("Input", ""),
                    },
                }
            )
        return saved

    def _messages(self) -> dict[str, list[dict[str, Any]]] | None:
        """Each queue's messages with what is left of their delay (moto's own objects)."""
        try:
            from moto.sqs.models import sqs_backends

            queues = sqs_backends[_ACCOUNT][self._region].queues
            now_ms = time.time() * 1000
            saved: dict[str, list[dict[str, Any]]] = {}
            for role, url in self._queue_urls.items():
                queue = queues[url.rsplit("/", 1)[-1]]
                saved[role] = [
                    {
                        "body": message.body,
                        "delay": max(0, int((message.delayed_until - now_ms) / 1000 + 0.999)),
                    }
                    for message in list(queue._messages)
                ]
            return saved
        except Exception as error:  # moto's internals are not an API: fall back to reconcile
            log.warning(
                "queued messages are not saved (%s); runs are rebuilt from the table", error
            )
            return None

    # -- restoring -----------------------------------------------------------------------

    def restore(self) -> Restored:
        items = [
            json.loads(line)
            for line in (self.directory / "table.jsonl").read_text().splitlines()
            if line.strip()
        ]
        runs = 0
        for item in items:
            if item.get("sk", {}).get("S") == RUN_SK:
                runs += 1
                if "lx" in item:
                    # Its holder was this server's previous process, which is gone.
                    item["lx"] = {"N": "0"}
        dynamodb = self._clients.dynamodb
        for start in range(0, len(items), 25):
            pending: dict[str, Any] = {
                self._table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            }
            while pending:
                response = dynamodb.batch_write_item(RequestItems=pending)
                pending = dict(response.get("UnprocessedItems") or {})
        schedules = self._read_json("schedules.json", [])
        scheduler = self._clients.scheduler
        for schedule in schedules:
            try:
                scheduler.create_schedule(
                    GroupName=self._group,
                    FlexibleTimeWindow={"Mode": "OFF"},
                    ActionAfterCompletion="DELETE",
                    **schedule,
                )
            except scheduler.exceptions.ConflictException:
                pass
        messages = self._read_json("messages.json", {})
        sent = 0
        for role, entries in messages.items():
            url = self._queue_urls.get(role)
            if url is None:
                continue
            for entry in entries:
                self._clients.sqs.send_message(
                    QueueUrl=url, MessageBody=entry["body"], DelaySeconds=min(900, entry["delay"])
                )
                sent += 1
        return Restored(items=len(items), runs=runs, schedules=len(schedules), messages=sent)

    def _read_json(self, name: str, default: Any) -> Any:
        path = self.directory / name
        return json.loads(path.read_text()) if path.exists() else default


def reconcile(services: Services) -> int:
    """Send each unfinished run what it needs to go on (see the module docstring);
    returns how many runs were sent something."""
    store = services.store
    queue, timers = services.ports.queue, services.ports.timers
    touched = 0
    for run in store.list_runs(limit=100_000):
        if run.status is RunStatus.QUEUED:
            queue.enqueue(WorkMessage(run_id=run.run_id, reason="start"))
        elif run.status is RunStatus.RUNNING:
            queue.enqueue(WorkMessage(run_id=run.run_id, reason="lease"))
        elif run.status in (RunStatus.SLEEPING, RunStatus.WAITING) and run.wake_at is not None:
            if run.wake_at <= EPOCH:
                queue.enqueue(WorkMessage(run_id=run.run_id, reason="event"))
            else:
                timers.arm(run.run_id, run.wake_at)
        else:
            continue
        touched += 1
    return touched


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
