"""Deployment settings, read from environment variables.

The SAM template sets exactly these variables on every function (a test pins that), and
`stepline worker` reads the same ones. Names of the local resources follow from
`STEPLINE_PREFIX` (see `infra/resources.py`).

| variable | meaning | default |
|---|---|---|
| STEPLINE_APP | `module:attribute` of the `App` | (required by handlers) |
| STEPLINE_TABLE | DynamoDB table | `<prefix>` |
| STEPLINE_WORK_QUEUE_URL | engine work queue | (required) |
| STEPLINE_WORK_QUEUE_ARN | the same queue's ARN (Scheduler targets it) | derived from the URL |
| STEPLINE_SCHEDULE_GROUP | EventBridge Scheduler group for long timers and cron schedules | `<prefix>` |
| STEPLINE_SCHEDULER_ROLE_ARN | role Scheduler assumes to send to the work queue (timers) and the events queue (cron ticks) | (required for long timers and cron schedules) |
| STEPLINE_EVENTS_QUEUE_ARN | the events queue: the bus's rules send the app's events there, and cron schedules their ticks | (required to sync cron schedules and event rules, and for waits on names computed at run time) |
| STEPLINE_EVENT_BUS | EventBridge bus name (the template's `EventBusName`) | `stepline` |
| STEPLINE_EVENT_SOURCE | `Source` of events Stepline publishes | `stepline` |
| STEPLINE_LOOKBACK | how far back a new wait looks for earlier events | `24h` |
| STEPLINE_SUSPEND_MARGIN | leave the Lambda when this much time remains | `30s` |
| STEPLINE_LEASE | how long a RUNNING claim lasts unless its holder renews it (it does, every third of this, while it works) | `60s` |
| STEPLINE_VISIBILITY_TIMEOUT | the consuming queue's visibility timeout, in seconds: a handler working longer extends its messages' visibility (0: never) | `0` |
| STEPLINE_REDACT_FIELDS | comma-separated data fields masked in logs | (none) |
| AWS_ENDPOINT_URL | boto3's own: point at moto or LocalStack | (real AWS) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

from pydantic import BaseModel, ConfigDict

from engine.settings import EngineSettings
from sdk import parse_duration

#: The bus name the template defaults to, and what `stepline dev` and LocalRuntime create.
DEFAULT_EVENT_BUS = "stepline"


class ConfigurationError(Exception):
    """A required setting is missing or malformed; the message says which and how to fix it."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    app: str | None = None
    table: str = "stepline"
    work_queue_url: str = ""
    work_queue_arn: str = ""
    schedule_group: str = "stepline"
    scheduler_role_arn: str = ""
    events_queue_arn: str = ""
    event_bus: str = DEFAULT_EVENT_BUS
    event_source: str = "stepline"
    lookback: timedelta = timedelta(hours=24)
    suspend_margin: timedelta = timedelta(seconds=30)
    lease: timedelta = timedelta(seconds=60)
    visibility_timeout: int = 0
    # Messages of different runs (or different events) a handler works on at once within
    # one batch; not an environment variable (the Lambda default suits every function).
    batch_concurrency: int = 10
    redact_fields: tuple[str, ...] = ()
    region: str | None = None
    endpoint_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field, variable in _VARIABLES.items():
            raw = env.get(variable)
            if raw is None or raw == "":
                continue
            if field in ("lookback", "suspend_margin", "lease"):
                try:
                    values[field] = parse_duration(raw, what=variable)
                except ValueError as error:
                    raise ConfigurationError(str(error)) from None
            elif field == "visibility_timeout":
                try:
                    values[field] = int(raw)
                except ValueError:
                    raise ConfigurationError(
                        f"{variable}={raw!r}: use a whole number of seconds"
                    ) from None
            elif field == "redact_fields":
                values[field] = tuple(part.strip() for part in raw.split(",") if part.strip())
            else:
                values[field] = raw
        values.setdefault("region", env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"))
        values.setdefault("endpoint_url", env.get("AWS_ENDPOINT_URL"))
        return cls.model_validate(values)

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings (for subprocesses)."""
        env = {}
        for field, variable in _VARIABLES.items():
            value = getattr(self, field)
            if value in (None, "", ()):
                continue
            if isinstance(value, timedelta):
                value = f"{int(value.total_seconds())}s"
            elif isinstance(value, tuple):
                value = ",".join(value)
            env[variable] = str(value)
        return env

    @property
    def queue_arn(self) -> str:
        if self.work_queue_arn:
            return self.work_queue_arn
        return queue_arn_from_url(self.work_queue_url)

    def require_queue(self) -> None:
        if not self.work_queue_url:
            raise ConfigurationError(
                "STEPLINE_WORK_QUEUE_URL is not set: set it to the URL of the engine's work "
                "queue (the WorkQueueUrl output of the stack)"
            )

    def engine_settings(self) -> EngineSettings:
        return EngineSettings(
            suspend_margin=self.suspend_margin,
            lease_duration=self.lease,
            lookback=self.lookback,
            redact_fields=self.redact_fields,
        )


_VARIABLES = {
    "app": "STEPLINE_APP",
    "table": "STEPLINE_TABLE",
    "work_queue_url": "STEPLINE_WORK_QUEUE_URL",
    "work_queue_arn": "STEPLINE_WORK_QUEUE_ARN",
    "schedule_group": "STEPLINE_SCHEDULE_GROUP",
    "scheduler_role_arn": "STEPLINE_SCHEDULER_ROLE_ARN",
    "events_queue_arn": "STEPLINE_EVENTS_QUEUE_ARN",
    "event_bus": "STEPLINE_EVENT_BUS",
    "event_source": "STEPLINE_EVENT_SOURCE",
    "lookback": "STEPLINE_LOOKBACK",
    "suspend_margin": "STEPLINE_SUSPEND_MARGIN",
    "lease": "STEPLINE_LEASE",
    "visibility_timeout": "STEPLINE_VISIBILITY_TIMEOUT",
    "redact_fields": "STEPLINE_REDACT_FIELDS",
}

#: The environment variables the code reads (the template must set these).
ENVIRONMENT_VARIABLES = tuple(_VARIABLES.values())


def queue_arn_from_url(url: str) -> str:
    """arn:aws:sqs:REGION:ACCOUNT:NAME from https://sqs.REGION.amazonaws.com/ACCOUNT/NAME."""
    parts = url.rstrip("/").split("/")
    if len(parts) < 2:
        raise ConfigurationError(
            f"cannot derive a queue ARN from {url!r}; set STEPLINE_WORK_QUEUE_ARN"
        )
    host = parts[2] if len(parts) > 2 else ""
    region = host.split(".")[1] if host.startswith("sqs.") else "us-east-1"
    return f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}"
