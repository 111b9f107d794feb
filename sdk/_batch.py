"""What `step.map` and `step.parallel` return when a completion option is given.

    result = ctx.step.map("charge-all", invoices, charge, tolerated_failure_count=2)
    result.completion_reason      # "ALL_COMPLETED" | "MIN_SUCCESSFUL_REACHED" | "FAILURE_TOLERANCE_EXCEEDED"
    result.results()              # the succeeded items' results, in item order
    result.throw_if_error()       # raise the first failure (a StepError)

Each item has a status: SUCCEEDED, FAILED, STARTED (it began but had not finished when
the outcome was decided: it stopped at its next step call, or it was waiting) or
NOT_STARTED (it was never started: the outcome was decided first).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sdk._errors import StepError


class CompletionReason(StrEnum):
    """Why a batch ended."""

    ALL_COMPLETED = "ALL_COMPLETED"
    MIN_SUCCESSFUL_REACHED = "MIN_SUCCESSFUL_REACHED"
    FAILURE_TOLERANCE_EXCEEDED = "FAILURE_TOLERANCE_EXCEEDED"


class BatchItemStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STARTED = "STARTED"
    NOT_STARTED = "NOT_STARTED"


@dataclass(frozen=True)
class BatchItem:
    """One item of a map, or one branch of a parallel, as the batch ended."""

    index: int
    name: str
    status: BatchItemStatus
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def error(self) -> StepError | None:
        """The item's failure as the StepError it raised (None unless FAILED)."""
        if self.status is not BatchItemStatus.FAILED:
            return None
        return StepError(self.name, self.error_type or "Error", self.error_message or "")


@dataclass(frozen=True)
class BatchResult:
    """The outcome of a batch: every item in order, and why the batch ended."""

    items: tuple[BatchItem, ...]
    completion_reason: CompletionReason

    @property
    def all(self) -> list[BatchItem]:
        return list(self.items)

    @property
    def status(self) -> BatchItemStatus:
        """FAILED if any item failed, else SUCCEEDED."""
        return BatchItemStatus.FAILED if self.has_failure else BatchItemStatus.SUCCEEDED

    @property
    def has_failure(self) -> bool:
        return any(item.status is BatchItemStatus.FAILED for item in self.items)

    @property
    def success_count(self) -> int:
        return sum(item.status is BatchItemStatus.SUCCEEDED for item in self.items)

    @property
    def failure_count(self) -> int:
        return sum(item.status is BatchItemStatus.FAILED for item in self.items)

    @property
    def started_count(self) -> int:
        """Items that began but had not finished when the outcome was decided."""
        return sum(item.status is BatchItemStatus.STARTED for item in self.items)

    @property
    def total_count(self) -> int:
        return len(self.items)

    def succeeded(self) -> list[BatchItem]:
        return [item for item in self.items if item.status is BatchItemStatus.SUCCEEDED]

    def failed(self) -> list[BatchItem]:
        return [item for item in self.items if item.status is BatchItemStatus.FAILED]

    def started(self) -> list[BatchItem]:
        return [item for item in self.items if item.status is BatchItemStatus.STARTED]

    def results(self) -> list[Any]:
        """The results of the items that succeeded, in item order."""
        return [item.result for item in self.succeeded()]

    def errors(self) -> list[StepError]:
        """The failures of the items that failed, in item order, as StepErrors."""
        return [error for item in self.failed() if (error := item.error) is not None]

    def throw_if_error(self) -> None:
        """Raise the first failure (a StepError naming the item), if any item failed."""
        for error in self.errors():
            raise error
