"""The errors a workflow author meets.

The tree::

    StepLineError                    base of everything Stepline raises at users
    ├── NonRetriableError            raise inside a step: fail it now, no more attempts
    ├── RetryAfterError              raise inside a step: retry after the given delay
    ├── StepError                    raised into the workflow when a step (or an invoked
    │                                child run) has failed for good; catch it to recover
    ├── NonDeterminismError          raised at a step call that does not match the
    │                                recorded history; the run fails even if the code
    │                                catches it (and every later step call raises it again)
    ├── WorkflowDefinitionError      a bad argument to App.workflow, Trigger, CancelOn or a
    │   (also a ValueError)          step call: a malformed duration, CEL expression, id
    └── CallbackError                completing, failing or heartbeating a callback was
                                     refused: its id is unknown, it expired, it was already
                                     completed, its run was cancelled, or the result is bad

"Fail the run" and "retry the invocation" are different things: every error above is
about a run. Infrastructure trouble (throttling, a lost Lambda) never surfaces here; the
engine retries the invocation instead. The engine's own errors (suspension and the other
step-control exceptions, the adapter contract, the error types it records) are drawn in
engine/errors.py.
"""

from __future__ import annotations

from datetime import timedelta


class StepLineError(Exception):
    """Base class of the errors Stepline raises at workflow authors."""


class NonRetriableError(StepLineError):
    """Raise inside a step to fail it at once, without using the remaining attempts."""


class RetryAfterError(StepLineError):
    """Raise inside a step to retry it after `delay` instead of the policy's backoff.

    `delay` is a timedelta or a duration string such as "30s" or "5m".
    """

    def __init__(self, message: str, delay: timedelta | str) -> None:
        from sdk._duration import parse_duration

        super().__init__(message)
        self.delay = parse_duration(delay, what="RetryAfterError delay")


class StepError(StepLineError):
    """A step failed for good; raised into the workflow, which may catch it.

    Carries the original error's type name and message, because the original exception
    object does not survive a replay: only its recorded description does.
    """

    def __init__(self, step_id: str, error_type: str, message: str) -> None:
        super().__init__(f"step {step_id!r} failed: {error_type}: {message}")
        self.step_id = step_id
        self.error_type = error_type
        self.error_message = message


class NonDeterminismError(StepLineError):
    """The workflow asked for a different step than the history recorded at that point."""


class WorkflowDefinitionError(StepLineError, ValueError):
    """A workflow, trigger or step was defined with an invalid argument."""


class CallbackError(StepLineError):
    """Completing, failing or heartbeating a callback was refused; nothing was changed.

    `reason` says why: "unknown" (no such callback: a mistyped or forged id), "expired"
    (it timed out or missed its heartbeat), "completed" (already completed or failed: the
    first result stands), "cancelled" (its run was cancelled) or "invalid" (the result or
    error given cannot be stored).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
