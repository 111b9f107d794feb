"""Calling the app's plugins (sdk/_plugins.py): each event once, a plugin's failure logged.

`Plugins` is made per run invocation when the app has plugins (None otherwise, so a
plain app pays one `is None` per hook site). The runner reports invocations; the
operations report their own starts, ends and attempts, at the moments that are new to
the run:

- an operation starts when its first record (or its first attempt) is made, not when a
  replay passes it;
- it ends when its outcome is recorded by this invocation, or, for outcomes settled from
  outside (a wait's event, a child run, a callback's completion, a sleep's time), when
  the run resumes at its position (`Session.resumed_at`);
- attempts are reported around each call of a step's function.

A hook that raises is logged with the plugin's and the hook's names and ignored.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sdk import PluginInfo

if TYPE_CHECKING:
    from engine.ids import StepKey
    from engine.model import ErrorInfo, StepRecord

log = logging.getLogger("stepline.plugins")


class Plugins:
    """The hooks of one run's invocation; see the module docstring."""

    def __init__(
        self, plugins: tuple[object, ...], *, run_id: str, workflow_id: str, first: bool
    ) -> None:
        self._plugins = plugins
        self.run_id = run_id
        self.workflow_id = workflow_id
        self.first = first
        # Keys of the operations whose end was reported by this invocation.
        self._ended: set[StepKey] = set()

    @classmethod
    def of(
        cls, plugins: tuple[object, ...], *, run_id: str, workflow_id: str, first: bool
    ) -> Plugins | None:
        if not plugins:
            return None
        return cls(plugins, run_id=run_id, workflow_id=workflow_id, first=first)

    def _emit(self, hook: str, **fields: Any) -> None:
        info = PluginInfo(
            run_id=self.run_id, workflow_id=self.workflow_id, first=self.first, **fields
        )
        for plugin in self._plugins:
            method = getattr(plugin, hook, None)
            if not callable(method):
                continue
            try:
                result = method(info)
                close = getattr(result, "close", None)
                if close is not None and hasattr(result, "__await__"):
                    close()
                    log.warning(
                        "plugin %s: %s is a coroutine function; hooks must be plain "
                        "functions, so it was not run",
                        type(plugin).__name__,
                        hook,
                    )
            except Exception:
                log.exception(
                    "plugin %s raised in %s (run %s); ignored: a plugin never fails a run",
                    type(plugin).__name__,
                    hook,
                    self.run_id,
                )

    # -- invocations -------------------------------------------------------------------

    def invocation_start(self) -> None:
        self._emit("on_invocation_start", status="RUNNING")

    def invocation_end(self, status: str, error: ErrorInfo | None = None) -> None:
        self._emit("on_invocation_end", status=status, error=_text(error))

    # -- operations and attempts ---------------------------------------------------------

    def operation_start(self, step_id: str, kind: str) -> None:
        self._emit("on_operation_start", status="STARTED", step_id=step_id, kind=kind)

    def operation_end(
        self,
        step_id: str,
        kind: str,
        *,
        failed: bool = False,
        error: ErrorInfo | None = None,
        attempt: int | None = None,
    ) -> None:
        self._emit(
            "on_operation_end",
            status="FAILED" if failed else "COMPLETED",
            step_id=step_id,
            kind=kind,
            attempt=attempt,
            error=_text(error) if failed else None,
        )

    def operation_settled(self, record: StepRecord, *, failed: bool) -> None:
        """An operation's end, told by its settled record."""
        self.operation_end(
            record.id,
            record.kind.value,
            failed=failed,
            error=record.error,
            attempt=record.attempts or None,
        )

    def operation_settled_once(self, record: StepRecord, *, failed: bool) -> None:
        """An outcome observed (not made) here: reported once per invocation."""
        if record.key in self._ended:
            return
        self._ended.add(record.key)
        self.operation_settled(record, failed=failed)

    def attempt_start(self, step_id: str, kind: str, attempt: int) -> None:
        self._emit(
            "on_attempt_start", status="STARTED", step_id=step_id, kind=kind, attempt=attempt
        )

    def attempt_end(
        self, step_id: str, kind: str, attempt: int, *, error: ErrorInfo | None = None
    ) -> None:
        self._emit(
            "on_attempt_end",
            status="FAILED" if error is not None else "COMPLETED",
            step_id=step_id,
            kind=kind,
            attempt=attempt,
            error=_text(error),
        )


def _text(error: ErrorInfo | None) -> str | None:
    return None if error is None else f"{error.type}: {error.message}"
