"""What the cost figures read from the deployment: the functions' memory (template.yaml)
and the event path (the rules a deploy makes from the app, infra/event_rules.py).

Read from there rather than written into the bench, so that a change of the deployment
(a memory size, the event rules and their queue) changes the figures.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from engine.event_names import routed_event_names
from infra.event_rules import chunked_patterns, names_in
from sdk import App

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


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """template.yaml as CloudFormation reads it: short-form tags (!Ref, !GetAtt, !Sub,
    ...) become their long forms ({"Ref": ...}, {"Fn::GetAtt": [...]}, ...). A fresh
    copy, which the caller may change (tests/test_deploy.py sets its CodeUri)."""
    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=_Loader)  # a SafeLoader
    return loaded


@cache
def template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template, read once (the figures only read it)."""
    return load_template(path)


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


def queues_delivered(app: App, name: str) -> list[str]:
    """The SQS queues a deploy of `app` has its bus's rules deliver an event of `name` to
    (the rules infra/event_rules.py makes from the names the app uses): one SendMessage
    by EventBridge per queue, EventBridge's own, which no hook of ours sees. An event no
    workflow uses goes nowhere."""
    return [
        "EventsQueue"
        for pattern in chunked_patterns(routed_event_names(app))
        if name in names_in(pattern)
    ]
