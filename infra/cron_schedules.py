"""Cron triggers on EventBridge Scheduler: the app's Crons as recurring schedules.

Each distinct (expression, time zone) among the app's Crons is one recurring schedule
in the stack's group, named `cron-<digest of both>`, whose target is the events queue
and whose input is a tick event (`stepline/cron`, engine/cron.py) carrying Scheduler's
own `<aws.scheduler.scheduled-time>`. `CronScheduleSync.sync(app)` makes the group
match the app: creates what is missing, updates what drifted (and re-enables what was
disabled), deletes the `cron-*` schedules no Cron needs any more; timers (`stepline-*`)
are never touched. It runs at deploy time (the stack's custom resource,
infra/lambda_functions.py), when LocalRuntime and `stepline dev` start, and on
`LocalRuntime.deploy`.

Standard cron and EventBridge's `cron(min hour day-of-month month day-of-week year)`
differ: EventBridge wants `?` in one day field, numbers days of the week from 1
(Sunday), and cannot restrict both day fields. `aws_cron` converts what maps exactly;
where it cannot (both day fields restricted, or a form it does not carry over) it
schedules a superset and says so (`exact=False`), and the engine drops the ticks the
expression does not match (engine/cron.py). `standard_cron` reads back what `aws_cron`
writes, for the local pump that plays Scheduler (infra/local/cron_pump.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from infra.aws_errors import aws_error, error_code
from sdk import CRON_EVENT, App, Cron

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_scheduler.type_defs import TargetTypeDef

PREFIX = "cron-"
#: Scheduler replaces this in a target's input with the time the invocation was due.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
# Scheduler retries a failed send (throttling, an outage) for up to a day; every retry
# carries the same scheduled time, so it starts the same run at most once.
RETRY_POLICY = {"MaximumEventAgeInSeconds": 86_400, "MaximumRetryAttempts": 185}

_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_SPECIAL_DOW = re.compile(r"([0-7])(#[1-5]|L)")


@dataclass(frozen=True)
class AwsCron:
    """A Cron as EventBridge Scheduler takes it; `exact=False` when it fires a superset."""

    expression: str
    exact: bool


def _values(text: str, low: int, high: int, names: tuple[str, ...] = ()) -> set[int] | None:
    """The numbers a plain cron field (numbers, names, ranges, steps, lists) stands for;
    None for anything else (L, W, #)."""

    def number(part: str) -> int:
        if part.upper() in names:
            return names.index(part.upper()) + (low if low == 1 else 0)
        if not part.isdigit():
            raise ValueError(part)
        return int(part)

    found: set[int] = set()
    try:
        for term in text.split(","):
            base, _, step_text = term.partition("/")
            step = int(step_text) if step_text else 1
            if base == "*":
                start, end = low, high
            elif "-" in base:
                first, last = base.split("-", 1)
                start, end = number(first), number(last)
            else:
                start = number(base)
                end = high if step_text else start
            found.update(range(start, end + 1, step))
    except ValueError:
        return None
    return found


def _render(values: set[int], low: int, high: int, names: tuple[str, ...] = ()) -> str:
    """A set of numbers as an EventBridge field: `*`, or runs and single values."""
    if values == set(range(low, high + 1)):
        return "*"
    ordered = sorted(values)
    parts: list[str] = []
    start = previous = ordered[0]

    def label(value: int) -> str:
        return names[value - (low if low == 1 else 0)] if names else str(value)

    for value in [*ordered[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        if previous - start >= 2:
            parts.append(f"{label(start)}-{label(previous)}")
        else:
            parts.extend(label(v) for v in range(start, previous + 1))
        if value is not None:
            start = previous = value
    return ",".join(parts)


def aws_cron(cron: Cron) -> AwsCron:
    """The schedule expression for a Cron (module docstring)."""
    minute, hour, dom, month, dow = cron.expression.split(" ")
    minutes, hours = _values(minute, 0, 59), _values(hour, 0, 23)
    months = _values(month, 1, 12, _MONTHS)
    assert minutes is not None and hours is not None and months is not None, cron
    days = _values(dom, 1, 31)
    weekdays = _values(dow, 0, 7, _DAYS)
    if weekdays is not None:
        weekdays = {day % 7 for day in weekdays}
    every_day = days == set(range(1, 32)) or weekdays == set(range(7))
    # crontab: when either day field starts with "*" both must match, else either may.
    both_must_match = dom.startswith("*") or dow.startswith("*")
    dom_text = _dom(dom, days)
    dow_text = _dow(dow, weekdays)
    exact = True
    if both_must_match:
        if days == set(range(1, 32)) and dom_text is not None:
            dom_text = "?"
            if dow_text is None:
                dow_text, exact = "*", False
            day_fields = (dom_text, dow_text)
        elif weekdays == set(range(7)) and dow_text is not None:
            day_fields = ("*" if dom_text is None else dom_text, "?")
            exact = dom_text is not None
        elif dow_text is not None:
            day_fields, exact = ("?", dow_text), False
        elif dom_text is not None:
            day_fields, exact = (dom_text, "?"), False
        else:
            day_fields, exact = ("*", "?"), False
    else:
        # Either field may match: EventBridge cannot say that; every day is a superset.
        day_fields, exact = ("*", "?"), every_day
    fields = (
        _render(minutes, 0, 59),
        _render(hours, 0, 23),
        day_fields[0],
        _render(months, 1, 12),
        day_fields[1],
        "*",  # the year
    )
    return AwsCron(f"cron({' '.join(fields)})", exact)


def _dom(text: str, days: set[int] | None) -> str | None:
    if days is not None:
        return _render(days, 1, 31)
    return text if text in ("L", "LW") else None


def _dow(text: str, weekdays: set[int] | None) -> str | None:
    if weekdays is not None:
        return _render(weekdays, 0, 6, _DAYS)
    special = _SPECIAL_DOW.fullmatch(text)
    if special is None:
        return None
    # EventBridge counts days of the week from 1 (Sunday): 5#2 (Friday) is 6#2 there.
    return f"{int(special.group(1)) % 7 + 1}{special.group(2)}"


def standard_cron(expression: str) -> str:
    """The 5-field cron of an EventBridge `cron(...)` expression that `aws_cron` wrote."""
    inner = expression.strip()
    if not (inner.startswith("cron(") and inner.endswith(")")):
        raise ValueError(f"not a cron() schedule expression: {expression!r}")
    fields = inner[5:-1].split()
    if len(fields) != 6 or fields[5] != "*":
        raise ValueError(f"not a schedule Stepline writes: {expression!r}")
    minute, hour, dom, month, dow, _ = fields
    if dom == "?":
        dom = "*"
    special = re.fullmatch(r"([1-7])(#[1-5]|L)", dow)
    if dow == "?":
        dow = "*"
    elif special is not None:
        dow = f"{int(special.group(1)) - 1}{special.group(2)}"
    return " ".join((minute, hour, dom, month, dow))


# -- the schedules of an app -------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleSpec:
    """One recurring schedule as the app needs it."""

    name: str
    cron: Cron
    aws: AwsCron
    workflows: tuple[str, ...]

    @property
    def description(self) -> str:
        superset = "" if self.aws.exact else "; fires a superset, the engine drops extra ticks"
        text = f"Stepline {self.cron!r} for {', '.join(self.workflows)}{superset}"
        return text if len(text) <= 512 else text[:511] + "…"

    def input(self) -> str:
        """The tick event Scheduler sends to the events queue (an EventBridge envelope)."""
        return tick_envelope(self.cron.expression, self.name, SCHEDULED_TIME)


def tick_envelope(expression: str, schedule: str, scheduled_time: str) -> str:
    """A trigger-queue message for a tick, shaped as an EventBridge rule delivers events."""
    return json.dumps(
        {
            "version": "0",
            "id": f"{schedule}-{scheduled_time}",
            "detail-type": CRON_EVENT,
            "source": "stepline.scheduler",
            "time": scheduled_time,
            "detail": {"cron": expression, "tick": scheduled_time},
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def schedule_name(cron: Cron) -> str:
    digest = hashlib.sha256(json.dumps([cron.expression, cron.tz]).encode()).hexdigest()
    return f"{PREFIX}{digest[:32]}"


def desired_schedules(app: App) -> dict[str, ScheduleSpec]:
    """The recurring schedules `app` needs, by name."""
    users: dict[Cron, list[str]] = {}
    for workflow, cron in app.crons():
        users.setdefault(cron, []).append(workflow.id)
    return {
        schedule_name(cron): ScheduleSpec(schedule_name(cron), cron, aws_cron(cron), tuple(ids))
        for cron, ids in users.items()
    }


@dataclass(frozen=True)
class SyncReport:
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.deleted)} deleted, {len(self.unchanged)} unchanged"
        )


class CronScheduleSync:
    """Keeps the `cron-*` schedules of one group equal to an app's Crons."""

    def __init__(
        self,
        scheduler: EventBridgeSchedulerClient,
        *,
        group: str,
        target_arn: str,
        role_arn: str,
    ) -> None:
        self._scheduler = scheduler
        self._group = group
        self._target_arn = target_arn
        self._role_arn = role_arn

    def sync(self, app: App) -> SyncReport:
        desired = desired_schedules(app)
        existing = self.existing()
        created, updated, unchanged = [], [], []
        for name, spec in desired.items():
            wanted = self._request(spec)
            if name not in existing and self._create(wanted):
                created.append(name)
                continue
            current = self._call("GetSchedule", name, self._get, name)
            if current is not None and _same(current, wanted):
                unchanged.append(name)
            else:
                self._call("UpdateSchedule", name, self._update, wanted)
                updated.append(name)
        deleted = [name for name in existing if name not in desired]
        for name in deleted:
            self._delete(name)
        return SyncReport(tuple(created), tuple(updated), tuple(deleted), tuple(unchanged))

    def delete_all(self) -> SyncReport:
        deleted = self.existing()
        for name in deleted:
            self._delete(name)
        return SyncReport(deleted=tuple(deleted))

    def existing(self) -> list[str]:
        """Names of the group's `cron-*` schedules."""
        names: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"GroupName": self._group, "NamePrefix": PREFIX}
            if token:
                kwargs["NextToken"] = token
            page = self._call("ListSchedules", "*", self._list, kwargs)
            names.extend(
                s["Name"] for s in page.get("Schedules", []) if s["Name"].startswith(PREFIX)
            )
            token = page.get("NextToken")
            if not token:
                return names

    def _request(self, spec: ScheduleSpec) -> dict[str, Any]:
        target: TargetTypeDef = {
            "Arn": self._target_arn,
            "RoleArn": self._role_arn,
            "Input": spec.input(),
            "RetryPolicy": {
                "MaximumEventAgeInSeconds": RETRY_POLICY["MaximumEventAgeInSeconds"],
                "MaximumRetryAttempts": RETRY_POLICY["MaximumRetryAttempts"],
            },
        }
        return {
            "Name": spec.name,
            "GroupName": self._group,
            "Description": spec.description,
            "ScheduleExpression": spec.aws.expression,
            "ScheduleExpressionTimezone": spec.cron.tz,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "Target": target,
        }

    def _create(self, request: dict[str, Any]) -> bool:
        """Create a schedule; False if one of that name exists (then it is updated)."""
        try:
            self._scheduler.create_schedule(**request)
        except ClientError as error:
            if error_code(error) == "ConflictException":
                return False
            raise self._error(error, "CreateSchedule", request["Name"]) from None
        except BotoCoreError as error:
            raise self._error(error, "CreateSchedule", request["Name"]) from None
        return True

    def _get(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._scheduler.get_schedule(Name=name, GroupName=self._group))
        except self._scheduler.exceptions.ResourceNotFoundException:
            return None

    def _list(self, kwargs: dict[str, Any]) -> Any:
        return self._scheduler.list_schedules(**kwargs)

    def _update(self, request: dict[str, Any]) -> None:
        self._scheduler.update_schedule(**request)

    def _delete(self, name: str) -> None:
        try:
            self._scheduler.delete_schedule(Name=name, GroupName=self._group)
        except self._scheduler.exceptions.ResourceNotFoundException:
            pass
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, "DeleteSchedule", name) from None

    def _call(self, action: str, name: str, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, action, name) from None

    def _error(self, error: ClientError | BotoCoreError, action: str, name: str) -> Exception:
        return aws_error(
            error,
            service="EventBridge Scheduler",
            resource=f"schedule group {self._group!r} ({action} {name})",
        )


def _same(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a stored schedule already is what `wanted` asks for."""
    keys = ("ScheduleExpression", "ScheduleExpressionTimezone", "State", "Description")
    if any(current.get(key) != wanted[key] for key in keys):
        return False
    if (current.get("FlexibleTimeWindow") or {}).get("Mode") != "OFF":
        return False
    target, want = current.get("Target") or {}, wanted["Target"]
    return all(target.get(key) == want[key] for key in ("Arn", "RoleArn", "Input"))
