"""`ctx.logger`: the workflow's logger, silent while the run replays what it already did.

Between suspensions the workflow function runs again from the top, so a plain logger
would write each line once per invocation. This one drops records while the session is
replaying recorded steps, and writes again from the first step (or resume point) that is
not simply replayed, so each line appears once per run.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol


class _Replaying(Protocol):
    run_id: str
    replaying: bool


class ReplayAwareLogger(logging.LoggerAdapter[logging.Logger]):
    def __init__(self, logger: logging.Logger, session: _Replaying) -> None:
        super().__init__(logger, {"run_id": session.run_id})
        self._session = session

    def isEnabledFor(self, level: int) -> bool:
        return not self._session.replaying and self.logger.isEnabledFor(level)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs
