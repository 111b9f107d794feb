"""`step.map`: call `fn(item, index)` for each item as one recorded batch.

Each call is an item of a batch (engine/operations/batch.py): a scope of its own, whose
steps are recorded under it and whose result is recorded once it ends, so a replay
neither calls it again nor re-reads its steps. Items are named `item_namer(item, index)`
or `"<id>[<index>]"`, and the results come back in item order: a list, or, with a
completion option, a `BatchResult`. `item_serdes` (or else `serdes`) stores each item's
result as its text; the batch's own record is a summary of statuses, which needs none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.model import StepKind
from engine.operations.batch import Completion, Item, concurrency_limit, item_name, run_batch
from engine.session import Session
from sdk import Serdes, WorkflowDefinitionError
from sdk._serdes import check_serdes


async def map(
    session: Session,
    step_id: str,
    items: Iterable[Any],
    fn: Callable[[Any, int], Any],
    *,
    max_concurrency: int | None = None,
    min_successful: int | None = None,
    tolerated_failure_count: int | None = None,
    tolerated_failure_percentage: float | None = None,
    item_namer: Callable[[Any, int], str] | None = None,
    serdes: Serdes | None = None,
    item_serdes: Serdes | None = None,
) -> Any:
    what = f"step.map {step_id!r}"
    if not callable(fn):
        raise WorkflowDefinitionError(f"{what}: {fn!r} is not callable; map takes fn(item, index)")
    if item_namer is not None and not callable(item_namer):
        raise WorkflowDefinitionError(f"{what}: item_namer must be a function (item, index) -> str")
    if isinstance(items, str | bytes | dict) or not isinstance(items, Iterable):
        raise WorkflowDefinitionError(
            f"{what}: items must be a list (or another iterable) of items"
        )
    values = list(items)
    limit = concurrency_limit(what, max_concurrency, session.settings.max_parallel_threads)
    completion = Completion.of(
        what, len(values), min_successful, tolerated_failure_count, tolerated_failure_percentage
    )
    stored_as = check_serdes(item_serdes, what=what) or check_serdes(serdes, what=what)

    def entry(index: int, value: Any) -> Item:
        name = item_namer(value, index) if item_namer is not None else f"{step_id}[{index}]"
        return Item(item_name(what, name), lambda: fn(value, index))

    return await run_batch(
        session,
        kind=StepKind.MAP,
        item_kind=StepKind.MAP_ITEM,
        step_id=step_id,
        items=[entry(index, value) for index, value in enumerate(values)],
        completion=completion,
        limit=limit,
        serdes=stored_as,
    )
