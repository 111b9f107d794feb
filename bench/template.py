"""What the cost figures read from template.yaml: the engine's memory and the event path.

Read from the template rather than written into the bench, so that a change of the
deployment (a memory size, the event rules and their queues) changes the figures.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "template.yaml"
ENGINE_HANDLER = "handlers.engine.handler"
LAMBDA_DEFAULT_MEMORY_MB = 128


class _Loader(yaml.SafeLoader):
    pass


def _long_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _long_form)


@cache
def template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=_Loader)  # a SafeLoader
    return loaded


def _resources() -> dict[str, Any]:
    resources: dict[str, Any] = template().get("Resources", {})
    return resources


def engine_memory_mb() -> int:
    """MemorySize of the function whose handler is the engine's (else Globals, else
    Lambda's default)."""
    return memory_mb(ENGINE_HANDLER)


def memory_mb(handler: str) -> int:
    """MemorySize of the function with this handler; the default function's when none
    names it (Globals, else Lambda's default)."""
    default = template().get("Globals", {}).get("Function", {}).get("MemorySize")
    for resource in _resources().values():
        props = resource.get("Properties", {})
        if resource.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function") and (
            props.get("Handler") == handler
        ):
            memory = props.get("MemorySize", default)
            return int(memory) if memory is not None else LAMBDA_DEFAULT_MEMORY_MB
    if handler == ENGINE_HANDLER:
        raise LookupError(f"template.yaml has no function with handler {handler}")
    return int(default) if default is not None else LAMBDA_DEFAULT_MEMORY_MB


def _matches(pattern: Any, value: Any, present: bool) -> bool:
    """EventBridge's pattern matching, for the forms a rule of ours may use. A value
    CloudFormation fills in (a Ref, Fn::*) is taken to match: the figure then counts the
    delivery (it errs on the dear side)."""
    if isinstance(pattern, dict) and any(k == "Ref" or k.startswith("Fn::") for k in pattern):
        return True
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(_matches(p, value.get(k), k in value) for k, p in pattern.items())
    if not isinstance(pattern, list):
        return bool(pattern == value)
    for option in pattern:
        if isinstance(option, dict):
            if any(k == "Ref" or k.startswith("Fn::") for k in option):
                return True
            if "exists" in option and bool(option["exists"]) == present:
                return True
            prefix = option.get("prefix")
            if isinstance(prefix, str) and isinstance(value, str) and value.startswith(prefix):
                return True
            if "anything-but" in option and present:
                excluded = option["anything-but"]
                excluded = excluded if isinstance(excluded, list) else [excluded]
                if value not in excluded:
                    return True
        elif present and option == value:
            return True
    return False


def _queue_of(arn: Any) -> str | None:
    """The SQS queue resource a rule target's Arn names (a GetAtt of a queue)."""
    if isinstance(arn, dict) and "Fn::GetAtt" in arn:
        name = arn["Fn::GetAtt"][0]
        if _resources().get(name, {}).get("Type") == "AWS::SQS::Queue":
            return str(name)
    return None


def queues_delivered(name: str, source: str = "my.app", detail: Any = None) -> list[str]:
    """The SQS queues the template's enabled rules deliver an event of `name` to: one
    SendMessage by EventBridge per queue (EventBridge's own sends, which no hook of ours
    sees)."""
    event = {"source": source, "detail-type": name, "detail": detail or {}}
    queues: list[str] = []
    for resource in _resources().values():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        props = resource.get("Properties", {})
        if props.get("State", "ENABLED") != "ENABLED":
            continue
        pattern = props.get("EventPattern")
        if isinstance(pattern, str):
            pattern = json.loads(pattern)
        if pattern is not None and not _matches(pattern, event, True):
            continue
        for target in props.get("Targets", []):
            queue = _queue_of(target.get("Arn"))
            if queue is not None:
                queues.append(queue)
    return queues
