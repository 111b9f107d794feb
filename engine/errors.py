"""Control flow of the replay core, and the failures the engine records on steps.

The step-control exceptions derive from `BaseException`, so a workflow's
`except Exception:` cannot swallow a suspension or a fatal error by accident:

    BaseException
    ├── SuspendRun              a step cannot finish now (sleep, wait, retry backoff,
    │                           invoke, time budget); unwinds to the engine, which
    │                           records the suspension and arms its wake-up
    ├── FailRun                 the run must fail whatever the code does (non-determinism)
    ├── Superseded              another invocation recorded this step first; this one
    │   │                       stops without writing anything more
    │   └── RunHalted           the invocation lost its claim on the run before a new
    │                           step (cancelled, or taken over); see engine/lease.py
    └── InfrastructureFailure   a port failed after its retries, or for good; the engine
                                gives the message back to the queue (wraps a
                                TransientError or a PermanentError)

    Exception
    └── StepOutputError         a step's result cannot be stored (not JSON, too big);
                                recorded as the step's non-retriable failure
"""

from __future__ import annotations

from engine.model import ErrorInfo
from engine.ports import PermanentError, TransientError


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


class StepOutputError(Exception):
    """A step's (or run's) output cannot be stored."""


class OutputNotSerializableError(StepOutputError):
    pass


class OutputTooLargeError(StepOutputError):
    pass
