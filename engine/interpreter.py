"""The replay core's entry: run a workflow function over its history, return an `Outcome`.

`Interpreter.execute()` calls the workflow function with a `Context` (or `AsyncContext`)
whose `step` methods are the durable operations (engine/operations/, bound by
engine/steps.py), all working on one invocation `Session` (engine/session.py):

- a step whose outcome is recorded returns it (or re-raises its recorded failure as
  `StepError`) without running any code;
- the first step with no record runs inline, its outcome is written with one
  conditional put, and the function carries on in the same invocation;
- a step that cannot finish now (sleep, wait, invoke, retry backoff, or a nearly spent
  time budget) registers what it waits for and raises `SuspendRun`.

It returns an `Outcome` (engine/outcomes.py: Completed, Failed, Suspended, ContinuedAsNew,
Abandoned)
and performs no run transitions itself: the `Runner` applies the outcome. The only
writes made here are step records (and, for `invoke`, creating the child run), each a
compare-and-set, so a concurrent invocation can never make a step's outcome be recorded
twice.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from engine.driver import run_coroutine
from engine.errors import ContinueAsNew, FailRun, InfrastructureFailure, Superseded, SuspendRun
from engine.ids import StepKey
from engine.lease import LeaseKeeper
from engine.lifecycle import Lifecycle
from engine.model import ErrorInfo
from engine.operations.patched import Patches
from engine.outcomes import Abandoned, Completed, ContinuedAsNew, Failed, Outcome, Suspended
from engine.plugins import Plugins
from engine.ports import LoadedRun, Ports
from engine.session import Session, current_attempt
from engine.settings import EngineSettings
from engine.steps import AsyncSteps, SyncSteps
from sdk import App, AsyncContext, Context, Workflow


class Interpreter:
    def __init__(
        self,
        *,
        app: App,
        workflow: Workflow,
        loaded: LoadedRun,
        ports: Ports,
        lifecycle: Lifecycle,
        settings: EngineSettings,
        remaining_time: Callable[[], float],
        keeper: LeaseKeeper | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        self.workflow = workflow
        self.session = Session(
            app=app,
            workflow=workflow,
            loaded=loaded,
            ports=ports,
            lifecycle=lifecycle,
            settings=settings,
            remaining_time=remaining_time,
            keeper=keeper,
            plugins=plugins,
        )

    def execute(self) -> Outcome:
        # A context of its own: nothing the workflow sets (the scope, the running-step
        # marker) outlives this invocation in the thread, whatever interrupts it.
        return contextvars.copy_context().run(self._execute)

    def _execute(self) -> Outcome:
        session = self.session
        session.enter_scope(StepKey())
        context: dict[str, Any] = {
            "event": session.loaded.event,
            "run_id": session.run_id,
            "workflow_id": self.workflow.id,
            "logger": session.logger,
            "attempt": current_attempt,
            "events": session.loaded.batch,
            "continue_as_new": session.continue_as_new,
            "patches": Patches(session),
        }
        fn = self.workflow.fn
        try:
            if self.workflow.is_async:
                actx = AsyncContext(step=AsyncSteps(session), **context)
                output = run_coroutine(lambda: fn(actx))
            else:
                output = fn(Context(step=SyncSteps(session), **context))
        except SuspendRun:
            output = None
        except ContinueAsNew as continuation:
            if session.fatal is not None:
                return Failed(session.fatal)
            return ContinuedAsNew(continuation.data)
        except FailRun as failure:
            return Failed(failure.error)
        except Superseded:
            return Abandoned("another invocation recorded a step of this run first")
        except InfrastructureFailure as failure:
            raise failure.error from None
        except Exception as error:
            # Also a NonDeterminismError the code did not catch: the fatal flag says so.
            if session.fatal is None and not session.pending:
                return Failed(ErrorInfo.from_exception(error))
            output = None
        if session.fatal is not None:
            return Failed(session.fatal)
        if session.pending:
            return Suspended(tuple(session.pending))
        return Completed(output)


__all__ = ["Interpreter"]
