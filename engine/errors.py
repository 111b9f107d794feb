"""Every error the engine raises, catches or records, in one tree.

    BaseException
    ├── SuspendRun               a step cannot finish now (sleep, wait, retry backoff, invoke,
    │                            time budget); unwinds to the engine, which records the
    │                            suspension and arms its wake-up
    ├── FailRun                  the run must fail whatever the code does (too many steps)
    ├── Superseded               another invocation recorded a step of this run first; this
    │   │                        one stops without writing anything more
    │   └── RunHalted            the invocation lost its claim on the run before a new step
    │                            (cancelled, or taken over); see engine/lease.py
    ├── BatchHalted              the outcome of a map or parallel with completion options is
    │                            decided: an item still running stops at its next step call
    ├── InfrastructureFailure    a port failed inside a run (wraps a TransientError or a
    │                            PermanentError); the message goes back to the queue
    └── ContinueAsNew            `ctx.continue_as_new(data)`: the run ends, and a fresh
                                 run of the same workflow starts with `data`

    Exception
    ├── TransientError           the adapter contract, by permanence: retrying may fix it
    │   └── UnreachableError     (throttling, a 5xx, a timeout; the endpoint unreachable)
    ├── PermanentError           retrying will not fix it; `remedy` says what will, after
    │   │                        which the dead-letter queue is redriven
    │   ├── ItemTooLargeError    a record is over the item size limit
    │   ├── ResourceMissingError a table, queue, bus or schedule group does not exist
    │   │   └── TableMissing     the DynamoDB table (or its index)
    │   ├── AccessDeniedError    the credentials lack a permission
    │   └── InvalidRequestError  the service refused the request as invalid
    ├── RunConflict              a lost compare-and-set on the run item (carries the run)
    ├── StepConflict             a lost compare-and-set on a step (carries what is stored)
    ├── FlowConflict             a flow commit refused (engine/flow/ports.py): which of its
    │                            changes failed their expectations; nothing was written
    ├── OperationFailure         an operation's own failure, recorded on its step under the
    │   │                        class's name (StepError.error_type)
    │   ├── StepTimeoutError     an attempt ran past the step's `timeout` (the retry
    │   │                        policy decides)
    │   ├── AttemptInterruptedError  an at-most-once attempt was cut off before its
    │   │                        outcome was recorded; it is not run again
    │   ├── CallbackTimeoutError a callback was not completed in time, or missed a heartbeat
    │   └── ConditionNotMetError wait_for_condition's condition did not hold in max_attempts
    └── StepOutputError          a step's (or run's) result cannot be stored; recorded as
        │                        the step's non-retriable failure
        ├── OutputNotSerializableError   not JSON-serialisable
        └── OutputTooLargeError          over EngineSettings.max_output_bytes

The step-control exceptions derive from `BaseException`, so a workflow's `except
Exception:` cannot swallow a suspension. The errors workflow authors see (`StepError`,
`NonRetriableError`, `RetryAfterError`, `NonDeterminismError`, `WorkflowDefinitionError`)
are the SDK's, drawn in sdk/_errors.py. The engine raises `sdk.NonDeterminismError` at
the step call that does not match the history; it is an `Exception`, but it sets the
invocation's fatal flag (engine/session.py), so the run fails even if the code catches it.

Adapters raise only the adapter-contract errors and the conflicts, chosen by the type of
the failure (the AWS error code), never by its text (infra/aws_errors.py). Inside a run, a
permanent error fails the message, not the run: an operator's fix and a redrive let it
carry on. Two exceptions: an item too large fails the step or run it is about
(Session.record, Runner._apply), and the bus failing a `send_event` step is that step's
failure, retried with its policy.

`ErrorType` names the error types the engine records (`ErrorInfo.type`) besides the class
names of exceptions raised by user code. They are stored and shown to users
(`StepError.error_type`), so they never change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from engine.model import ErrorInfo, RunRecord
    from engine.ports import Stored

# -- control flow of the replay core -------------------------------------------------


class SuspendRun(BaseException):
    """Unwinds the workflow to the engine at a suspension point."""


class FailRun(BaseException):
    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(str(error))
        self.error = error


class Superseded(BaseException):
    """Another invocation owns this run now."""


class RunHalted(Superseded):
    """The run was cancelled or claimed by another delivery while this invocation ran."""


class InfrastructureFailure(BaseException):
    def __init__(self, error: TransientError | PermanentError) -> None:
        super().__init__(str(error))
        self.error = error


class ContinueAsNew(BaseException):
    """`ctx.continue_as_new(data)`: end the run and start a fresh one with `data`."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__("continue as new")
        self.data = data


class BatchHalted(BaseException):
    """The batch this code runs in has its outcome: stop before starting another step."""


# The exceptions a parallel branch hands to its join as "the invocation ends", not as the
# branch's failure (BatchHalted: "this item stops here").
CONTROL_FLOW = (
    SuspendRun,
    FailRun,
    Superseded,
    InfrastructureFailure,
    BatchHalted,
    ContinueAsNew,
)

# -- the adapter contract ------------------------------------------------------------


class TransientError(Exception):
    """An infrastructure call failed after retries; the message should be retried later."""


class UnreachableError(TransientError):
    """The service's endpoint could not be connected to (refused, connect timeout, DNS)."""


class PermanentError(Exception):
    """An infrastructure call failed in a way retrying will not fix.

    `remedy` says what to do about it; once that is done, the messages that failed
    meanwhile are sent back from their dead-letter queue (redriven).
    """

    remedy = "fix the cause named in the error"


class ItemTooLargeError(PermanentError):
    """A record is over the store's item size limit (DynamoDB: 400 KB)."""

    remedy = "keep what steps return and events carry under the documented limits"


class ResourceMissingError(PermanentError):
    """A table, queue, event bus or schedule group the adapter uses does not exist."""

    remedy = (
        "deploy the stack, or point the STEPLINE_* settings (and the region) at the "
        "resources it created"
    )


class TableMissing(ResourceMissingError):
    """The table (or its index) does not exist."""


class AccessDeniedError(PermanentError):
    """The credentials lack a permission the call needs (or are invalid)."""

    remedy = "grant the function's role the permission named in the error"


class InvalidRequestError(PermanentError):
    """The service refused the request as invalid (a validation error)."""

    remedy = "fix what the error names; if it is Stepline's own request, report it as a bug"


# Earlier names of the permanent branch, kept for callers written against them.
AdapterError = PermanentError
PayloadTooLarge = ItemTooLargeError

# -- lost compare-and-sets -----------------------------------------------------------


class RunConflict(Exception):
    """The run item changed since it was read (its version differs), or does not exist."""

    def __init__(self, current: RunRecord | None) -> None:
        super().__init__("run changed concurrently")
        self.current = current


class StepConflict(Exception):
    """A step record changed since it was read, or already exists.

    `current` is the record as stored now, with its revision (None: it does not exist).
    """

    def __init__(self, current: Stored | None) -> None:
        super().__init__("step record changed concurrently")
        self.current = current


class FlowConflict(Exception):
    """A flow commit wrote nothing: the changes at `failed` (their indexes) did not meet
    their expectations. For a failed `CreateRun` the run exists; for a failed `WriteRun`,
    `runs` holds the stored run when the store returned it."""

    def __init__(
        self, failed: tuple[int, ...], runs: dict[int, RunRecord | None] | None = None
    ) -> None:
        super().__init__(f"flow commit refused at changes {list(failed)}")
        self.failed = failed
        self.runs = runs or {}


class OperationFailure(Exception):
    """An operation's own failure; its class name is the recorded `ErrorInfo.type`."""


class StepTimeoutError(OperationFailure):
    """A step's attempt did not return within its `timeout` (or the invocation's time)."""


class AttemptInterruptedError(OperationFailure):
    """An at-most-once attempt began but its outcome was never recorded (a crash)."""


class CallbackTimeoutError(OperationFailure):
    """A callback was not completed within its timeout, or missed its heartbeat timeout."""


class ConditionNotMetError(OperationFailure):
    """wait_for_condition's condition did not hold within its max_attempts."""


# -- results that cannot be stored ---------------------------------------------------


class StepOutputError(Exception):
    """A step's (or run's) output cannot be stored."""


class OutputNotSerializableError(StepOutputError):
    pass


class OutputTooLargeError(StepOutputError):
    pass


# -- recorded error types ------------------------------------------------------------


class ErrorType:
    """The `ErrorInfo.type` of the failures the engine itself records on steps and runs."""

    #: The code asked for another step than the history holds (sdk.NonDeterminismError).
    NON_DETERMINISM: Final = "NonDeterminismError"
    #: A scope called more steps than positions allow (engine.ids.MAX_POSITION).
    HISTORY_LIMIT: Final = "HistoryLimitError"
    #: The store refused a step's or run's record as too large (ItemTooLargeError).
    ITEM_TOO_LARGE: Final = "ItemTooLargeError"
    #: An invoked child run did not finish within the invoke's timeout.
    INVOKE_TIMEOUT: Final = "InvokeTimeoutError"
    #: The run's workflow is not defined by the app the engine loaded.
    UNKNOWN_WORKFLOW: Final = "UnknownWorkflowError"
    #: The run was cancelled (by id, by a cancel_on event, or with its parent).
    CANCELLED: Final = "Cancelled"
    #: A failure recorded without a description (a record from outside the engine).
    UNKNOWN: Final = "Error"
    #: A flow control's key expression could not be evaluated on a run's event.
    FLOW_KEY: Final = "FlowKeyError"
