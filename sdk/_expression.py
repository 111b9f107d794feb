"""Match expressions: `if_=` CEL expressions (`match=` paths are sdk/_paths.py).

A CEL expression sees two variables, as in Inngest: `event`, the run's triggering event,
and `async`, the incoming event being matched. Each is a map with `name`, `data`, `id`
and `ts`. Expressions compile when the workflow is defined, so a typo fails at import
time rather than on the first event; an expression that errors on a particular event
(a missing field, a type mismatch) counts as "no match" and the caller logs it.

Evaluation is bounded, so that one large event cannot hold a handler for long:

- only what an expression can reach is converted to CEL values: `async.data.userId ==
  event.data.userId` converts two fields, not two 250 KB events (the paths are worked
  out once, when the expression compiles);
- every evaluation runs on a step budget (`MAX_STEPS`): one step per node of the
  expression visited and one per value of the event converted (each costs about 7 µs
  of cel-python on one core). An expression that needs more fails with
  `ExpressionBudgetError`, which callers treat as no match;
- a `Budget` is shared by every expression evaluated on one event, or in one message
  of the engine (`MAX_EVENT_STEPS`), and converts each part of an event once however
  many expressions read it.

An `ExpressionError` names the expression and a category of error ("no such field",
"type mismatch", ...), never a value from the event: it is logged, and events carry
data that must not reach the log.

cel-python is imported on first use: it costs ~70 ms, which handlers that never meet an
expression should not pay at cold start.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from sdk._errors import WorkflowDefinitionError
from sdk._event import Event

#: Steps one evaluation may take: nodes of the expression visited (a comprehension such
#: as `exists()` visits its body once per element), plus the values of the event it
#: converts. About 0.3 s of cel-python on one core.
MAX_STEPS = 40_000
#: Steps all the expressions evaluated on one event may take together (under 1 s).
MAX_EVENT_STEPS = 120_000

#: The names an expression's variables go by.
VARIABLES = ("event", "async")


class ExpressionError(Exception):
    """An expression could not be evaluated against a particular event.

    The message holds the expression's source and `category` only: never a value from
    the event, since it is logged.
    """

    def __init__(self, source: str, category: str) -> None:
        super().__init__(f"{source!r}: {category}")
        self.source = source
        self.category = category


class ExpressionBudgetError(ExpressionError):
    """The expression needed more steps than its budget allows on this event."""


def event_as_map(event: Event) -> dict[str, Any]:
    return {
        "name": event.name,
        "data": event.data,
        "id": event.id,
        "ts": event.ts.isoformat() if event.ts else None,
    }


class _Meter:
    """Steps left to one evaluation; `spend` raises once they run out."""

    __slots__ = ("left", "limit", "source")

    def __init__(self, limit: int, source: str) -> None:
        self.limit = limit
        self.left = limit
        self.source = source

    @property
    def used(self) -> int:
        return self.limit - self.left

    def spend(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise ExpressionBudgetError(
                self.source, f"needs more than {self.limit:,} evaluation steps on this event"
            )


class Budget:
    """What evaluating expressions on one event may still cost, shared by all of them.

    Also keeps the CEL form of the parts of the event already converted, so that an
    event matched against a hundred waits is converted once.
    """

    def __init__(self, steps: int = MAX_EVENT_STEPS) -> None:
        self.steps = steps
        self.left = steps
        # Evaluations refused for want of steps (the caller logs the first one).
        self.refused = 0
        # id(event) -> (event, {paths key: CEL value, or the error converting it gave})
        self._converted: dict[int, tuple[Event, dict[str, Any]]] = {}

    def _cached(self, event: Event) -> dict[str, Any]:
        entry = self._converted.get(id(event))
        if entry is None or entry[0] is not event:
            entry = (event, {})
            self._converted[id(event)] = entry
        return entry[1]


# A tree of the fields an expression reads from a variable: {"data": {"userId": None}}
# means it reads `data.userId` (and anything below it); None means the whole value.
Paths = dict[str, "Paths | None"]


def _insert(paths: Paths, path: list[str]) -> None:
    node = paths
    for index, name in enumerate(path):
        if name in node and node[name] is None:
            return  # already wanted whole
        if index == len(path) - 1:
            node[name] = None
            return
        child = node.get(name)
        if child is None:
            child = node[name] = {}
        node = child


def _reads(tree: Any) -> dict[str, Paths | None]:
    """For each of VARIABLES the expression mentions, the fields of it that it reads.

    A chain of field selections on a variable (`async.data.items`) reads the value at
    its end, whatever is then done with it; the variable alone, or any form this does
    not recognise, reads the whole variable. So the result is never smaller than what
    evaluation can touch, and converting just that gives the same answer as converting
    everything.
    """
    import lark

    chains: list[tuple[str, list[str]]] = []
    accounted = 0

    def chain(member: Any) -> tuple[str, list[str], int] | None:
        # member : member_dot | primary ; member_dot : member "." IDENT ; primary : ident
        if not (isinstance(member, lark.Tree) and member.data == "member"):
            return None
        if len(member.children) != 1 or not isinstance(member.children[0], lark.Tree):
            return None
        node = member.children[0]
        if node.data == "primary":
            if len(node.children) == 1 and isinstance(node.children[0], lark.Tree):
                ident = node.children[0]
                if (
                    ident.data == "ident"
                    and len(ident.children) == 1
                    and isinstance(ident.children[0], lark.Token)
                ):
                    root = str(ident.children[0])
                    return root, [], 1 if root in VARIABLES else 0
            return None
        if node.data == "member_dot" and len(node.children) == 2:
            inner, name = node.children
            found = chain(inner)
            if found is None or not isinstance(name, lark.Token):
                return None
            root, path, tokens = found
            return root, [*path, str(name)], tokens + (1 if str(name) in VARIABLES else 0)
        return None

    def walk(node: Any) -> None:
        nonlocal accounted
        if not isinstance(node, lark.Tree):
            return
        found = chain(node)
        if found is not None:
            root, path, tokens = found
            accounted += tokens
            if root in VARIABLES:
                chains.append((root, path))
            return
        for child in node.children:
            walk(child)

    walk(tree)
    mentions = sum(
        1
        for token in tree.scan_values(lambda value: isinstance(value, lark.Token))
        if str(token) in VARIABLES
    )
    reads: dict[str, Paths | None] = {}
    if mentions != accounted:
        # A form the analysis does not know: convert every variable whole.
        return dict.fromkeys(VARIABLES)
    for root, path in chains:
        if not path:
            reads[root] = None
        elif reads.get(root, {}) is not None:
            current = reads.setdefault(root, {})
            assert current is not None
            _insert(current, path)
    return reads


def _to_cel(value: Any, meter: _Meter) -> Any:
    """celpy.adapter.json_to_cel, counting what it converts."""
    from celpy import celtypes

    meter.spend(1)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return celtypes.ListType([_to_cel(item, meter) for item in value])
    if isinstance(value, dict):
        return celtypes.MapType(
            {_to_cel(key, meter): _to_cel(item, meter) for key, item in value.items()}
        )
    if isinstance(value, datetime.datetime):
        return celtypes.TimestampType(value)
    if isinstance(value, datetime.timedelta):
        return celtypes.DurationType(value)
    raise TypeError(f"a {type(value).__name__} is not a JSON value")


def _convert(value: Any, paths: Paths | None, meter: _Meter) -> Any:
    """The CEL form of `value`, limited to `paths` (None: all of it)."""
    if paths is None or not isinstance(value, dict):
        return _to_cel(value, meter)
    from celpy import celtypes

    meter.spend(1)
    return celtypes.MapType(
        {
            celtypes.StringType(name): _convert(value[name], below, meter)
            for name, below in paths.items()
            if name in value
        }
    )


def _category(error: BaseException) -> str:
    """What kind of error cel-python reported, without its text (which quotes values)."""
    kind = error.args[1] if len(error.args) > 1 else None
    if isinstance(kind, type):
        for cls, category in _CATEGORIES:
            if issubclass(kind, cls):
                return category
    return "evaluation error"


_CATEGORIES: tuple[tuple[type[BaseException], str], ...] = (
    (KeyError, "no such field or key"),
    (TypeError, "type mismatch (no operator or function for these types)"),
    (ZeroDivisionError, "division by zero"),
    (OverflowError, "overflow"),
    (IndexError, "index out of range"),
    (NameError, "undeclared name"),
    (ValueError, "invalid value (a conversion or function failed)"),
)

_RUNNER: Any = None


def _runner_class() -> Any:
    """celpy's interpreter, with a step meter on every node it visits (built once)."""
    global _RUNNER
    if _RUNNER is not None:
        return _RUNNER
    import lark
    from celpy import InterpretedRunner
    from celpy.evaluation import Evaluator

    class MeteredEvaluator(Evaluator):
        def __init__(self, ast: Any, activation: Any, meter: _Meter) -> None:
            super().__init__(ast, activation)
            self.meter = meter

        def sub_evaluator(self, ast: Any) -> MeteredEvaluator:
            # Comprehension bodies (exists, all, map, filter) evaluate here.
            return MeteredEvaluator(ast, self.activation, self.meter)

        # Every node is visited either alone (`visit`) or as a child (`visit_children`).
        def visit(self, tree: Any) -> Any:
            self.meter.spend(1)
            return super().visit(tree)

        def visit_children(self, tree: Any) -> Any:
            self.meter.spend(sum(1 for child in tree.children if isinstance(child, lark.Tree)))
            return super().visit_children(tree)

    class MeteredRunner(InterpretedRunner):
        def run(self, context: dict[str, Any], meter: _Meter) -> Any:
            return MeteredEvaluator(self.ast, self.new_activation(), meter).evaluate(context)

    _RUNNER = MeteredRunner
    return _RUNNER


class Expression:
    """A compiled CEL expression over `event` (the trigger) and `async` (the incoming event)."""

    def __init__(self, source: str, *, what: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise WorkflowDefinitionError(f"{what}: if_ must be a non-empty CEL expression")
        import celpy

        self.source = source
        environment = celpy.Environment(runner_class=_runner_class())
        try:
            tree = environment.compile(source)
        except Exception as error:
            raise WorkflowDefinitionError(
                f"{what}: the CEL expression {source!r} does not compile: {error}. "
                'Expressions use CEL syntax, e.g. "async.data.userId == event.data.userId".'
            ) from error
        self._program: Any = environment.program(tree)
        self._reads = _reads(tree)
        # Keys of the conversion cache: which parts of a variable this expression reads.
        self._read_keys = {
            name: json.dumps(paths, sort_keys=True) for name, paths in self._reads.items()
        }

    def _variable(self, name: str, event: Event, budget: Budget, meter: _Meter) -> Any:
        """The CEL form of what the expression reads of `event`, converted once per event."""
        cache = budget._cached(event)
        key = f"{name}:{self._read_keys[name]}"
        if key in cache:
            found = cache[key]
            if isinstance(found, ExpressionBudgetError):
                raise ExpressionBudgetError(self.source, found.category)
            return found
        try:
            value = _convert(event_as_map(event), self._reads[name], meter)
        except TypeError:
            raise ExpressionError(self.source, "the event holds a value that is not JSON") from None
        except ExpressionBudgetError as error:
            # Too big to convert within one evaluation's budget: as much for the next one.
            cache[key] = ExpressionBudgetError(self.source, error.category)
            raise ExpressionBudgetError(self.source, error.category) from None
        cache[key] = value
        return value

    def evaluate(
        self,
        *,
        event: Event,
        incoming: Event | None = None,
        budget: Budget | None = None,
        max_steps: int = MAX_STEPS,
    ) -> bool:
        """True when the expression holds; raises ExpressionError when it cannot be evaluated.

        `budget` is the event's (shared by the expressions evaluated on it); without one
        the evaluation has MAX_STEPS to itself. ExpressionBudgetError when it runs out.
        """
        from celpy import celtypes

        result = self.result(event=event, incoming=incoming, budget=budget, max_steps=max_steps)
        if not isinstance(result, celtypes.BoolType | bool):
            kind = "null" if result is None else type(result).__name__.removesuffix("Type").lower()
            raise ExpressionError(self.source, f"gave a {kind}, not a boolean")
        return bool(result)

    def result(
        self,
        *,
        event: Event,
        incoming: Event | None = None,
        budget: Budget | None = None,
        max_steps: int = MAX_STEPS,
    ) -> Any:
        """The expression's CEL value (of any type), on the terms of `evaluate`."""
        budget = budget if budget is not None else Budget(max_steps)
        limit = min(max_steps, budget.left)
        meter = _Meter(max(limit, 0), self.source)
        try:
            if limit <= 0:
                raise ExpressionBudgetError(
                    self.source,
                    f"not evaluated: the expressions before it took all {budget.steps:,} "
                    "steps of the budget for this event",
                )
            activation: dict[str, Any] = {}
            for name, value in (("event", event), ("async", incoming)):
                if value is not None and name in self._reads:
                    activation[name] = self._variable(name, value, budget, meter)
            try:
                result = self._program.run(activation, meter)
            except ExpressionError:
                raise
            except Exception as error:
                raise ExpressionError(self.source, _category(error)) from None
            if meter.left < 0:
                # Something inside cel-python caught the budget error: it is still spent.
                raise ExpressionBudgetError(
                    self.source, f"needs more than {meter.limit:,} evaluation steps on this event"
                )
        finally:
            budget.left -= meter.used
        if isinstance(result, Exception):
            raise ExpressionError(self.source, _category(result))
        return result

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"
