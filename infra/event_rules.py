"""The bus's rules: only the events an app uses reach Stepline, once each.

Every event Stepline acts on goes through one path: an EventBridge rule on the bus sends
it to the `events` queue, whose one function starts runs, resolves waits and cancels
runs with it (infra/lambda_functions.py). The rules' patterns list the app's event names
(engine/event_names.py), so an event no workflow uses is never delivered and costs
Stepline nothing, and no name is in two rules, so each event is delivered once.

Two kinds of rule, both named after the stack (`prefix`):

- `<prefix>-events-<version>-<n>`: the app's names, in as few rules as EventBridge's
  pattern size allows (MAX_PATTERN_CHARS), kept equal to the app by `sync` at every
  deploy (the stack's `EventRules` custom resource), when LocalRuntime and `stepline
  dev` start, and on `LocalRuntime.deploy`. `<version>` is a digest of the names: a
  changed set of names gets new rules, made before the old ones are deleted, so during
  a deploy an event may be delivered twice (which the handlers take in their stride)
  but never not at all.
- `<prefix>-event-<digest>`: one name a run asked for at run time (a wait whose event
  name its code computes), made by `route` before that wait registers. A later deploy
  whose app spells the name out moves it into the numbered rules and deletes this one.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from infra.aws_errors import aws_error, error_code
from infra.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

#: EventBridge's default limit on an event pattern, in characters (adjustable to 4,096).
MAX_PATTERN_CHARS = 2048
#: The id of the events queue among a rule's targets.
TARGET_ID = "stepline-events"


def pattern_for(names: Iterable[str]) -> str:
    """The event pattern that lets through exactly these names."""
    return json.dumps({"detail-type": sorted(names)}, separators=(",", ":"))


def chunked_patterns(names: Iterable[str]) -> list[str]:
    """Patterns that together list every name, each within MAX_PATTERN_CHARS."""
    chunks: list[list[str]] = []
    for name in sorted(set(names)):
        if len(pattern_for([name])) > MAX_PATTERN_CHARS:
            raise ValueError(
                f"event name {name[:60]!r}... is too long for an EventBridge pattern; "
                "use a shorter name"
            )
        if chunks and len(pattern_for([*chunks[-1], name])) <= MAX_PATTERN_CHARS:
            chunks[-1].append(name)
        else:
            chunks.append([name])
    return [pattern_for(chunk) for chunk in chunks]


def names_in(pattern: str | None) -> set[str]:
    """The names a rule's pattern lets through (none for a pattern of another shape)."""
    try:
        listed = json.loads(pattern or "{}").get("detail-type")
    except (ValueError, AttributeError):
        return set()
    if not isinstance(listed, list):
        return set()
    return {name for name in listed if isinstance(name, str)}


def stack_rules(
    events: EventBridgeClient, settings: Settings, routed: Iterable[str] = ()
) -> EventRules:
    """The rules of the stack `settings` describe: named after its table (which is named
    after the stack), sending to its events queue."""
    return EventRules(
        events,
        bus=settings.event_bus,
        prefix=settings.table,
        queue_arn=settings.events_queue_arn,
        routed=routed,
    )


@dataclass(frozen=True)
class RulesReport:
    """What a sync did, by rule name."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.deleted)} deleted, {len(self.unchanged)} unchanged"
        )


class EventRules:
    """The rules of one stack's bus that send the app's events to its events queue."""

    def __init__(
        self,
        events: EventBridgeClient,
        *,
        bus: str,
        prefix: str,
        queue_arn: str,
        routed: Iterable[str] = (),
    ) -> None:
        self._events = events
        self._bus = bus or "default"
        self._prefix = prefix
        self._queue_arn = queue_arn
        # Names known to be routed (the deployed app's): `route` costs no call for them.
        self._routed = set(routed)
        self._lock = threading.Lock()

    @property
    def static_prefix(self) -> str:
        return f"{self._prefix}-events-"

    @property
    def dynamic_prefix(self) -> str:
        return f"{self._prefix}-event-"

    def dynamic_rule(self, name: str) -> str:
        return self.dynamic_prefix + hashlib.sha256(name.encode()).hexdigest()[:16]

    def sync(self, names: Iterable[str]) -> RulesReport:
        """Make the numbered rules list exactly `names`; drop run-time rules they cover."""
        wanted = sorted(set(names))
        version = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:8]
        desired = {
            f"{self.static_prefix}{version}-{index}": pattern
            for index, pattern in enumerate(chunked_patterns(wanted))
        }
        existing = self.existing()
        created: list[str] = []
        updated: list[str] = []
        unchanged: list[str] = []
        # Every new rule first, then the old ones go: no moment routes a name nowhere.
        for rule, pattern in desired.items():
            current = existing.get(rule)
            if current is not None and json.loads(current) == json.loads(pattern):
                unchanged.append(rule)
            else:
                self._put(rule, pattern, f"Events the app uses ({len(names_in(pattern))} names)")
                (created if current is None else updated).append(rule)
        covered = set(wanted)
        deleted = [
            rule
            for rule, pattern in existing.items()
            if (rule.startswith(self.static_prefix) and rule not in desired)
            or (rule.startswith(self.dynamic_prefix) and names_in(pattern) <= covered)
        ]
        for rule in deleted:
            self._delete(rule)
        with self._lock:
            self._routed.update(covered)
        return RulesReport(tuple(created), tuple(updated), tuple(deleted), tuple(unchanged))

    def route(self, name: str) -> None:
        """Make sure events named `name` reach the queue: nothing for a name known to be
        routed; else the rules are read again (a deploy since may list it) and, if none
        lists it, it gets a rule of its own (the same name always makes the same rule, and
        no name is in two rules: each event is delivered once)."""
        with self._lock:
            if name in self._routed:
                return
        routed = self.routed_names()
        if name not in routed:
            self._put(self.dynamic_rule(name), pattern_for([name]), "Events a run waits for")
            routed.add(name)
        with self._lock:
            self._routed |= routed

    def routed_names(self) -> set[str]:
        """Every name the stack's rules let through now."""
        found: set[str] = set()
        for pattern in self.existing().values():
            found |= names_in(pattern)
        return found

    def delete_all(self) -> RulesReport:
        existing = self.existing()
        for rule in existing:
            self._delete(rule)
        with self._lock:
            self._routed.clear()
        return RulesReport(deleted=tuple(existing))

    def existing(self) -> dict[str, str]:
        """The stack's rules (both kinds) on the bus, with their patterns."""
        found: dict[str, str] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "NamePrefix": self._prefix + "-event",
                "EventBusName": self._bus,
            }
            if token:
                kwargs["NextToken"] = token
            page = self._call("ListRules", "*", self._events.list_rules, kwargs)
            for rule in page.get("Rules", []):
                name = rule.get("Name", "")
                if name.startswith((self.static_prefix, self.dynamic_prefix)):
                    found[name] = rule.get("EventPattern", "")
            token = page.get("NextToken")
            if not token:
                return found

    def _put(self, rule: str, pattern: str, description: str) -> None:
        self._call(
            "PutRule",
            rule,
            lambda: self._events.put_rule(
                Name=rule,
                EventBusName=self._bus,
                EventPattern=pattern,
                State="ENABLED",
                Description=f"Stepline {self._prefix}: {description}, to its events queue.",
            ),
        )
        self._call(
            "PutTargets",
            rule,
            lambda: self._events.put_targets(
                Rule=rule,
                EventBusName=self._bus,
                Targets=[{"Id": TARGET_ID, "Arn": self._queue_arn}],
            ),
        )

    def _delete(self, rule: str) -> None:
        try:
            self._events.remove_targets(Rule=rule, EventBusName=self._bus, Ids=[TARGET_ID])
            self._events.delete_rule(Name=rule, EventBusName=self._bus)
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return
            raise self._error(error, "DeleteRule", rule) from None
        except BotoCoreError as error:
            raise self._error(error, "DeleteRule", rule) from None

    def _call(
        self, action: str, rule: str, call: Callable[..., Any], kwargs: dict[str, Any] | None = None
    ) -> Any:
        try:
            return call(**(kwargs or {}))
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, action, rule) from None

    def _error(self, error: ClientError | BotoCoreError, action: str, rule: str) -> Exception:
        return aws_error(
            error, service="EventBridge", resource=f"bus {self._bus!r} ({action} {rule})"
        )
