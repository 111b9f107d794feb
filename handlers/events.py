"""Lambda entry point fed by the events queue: everything an event does (start runs,
resolve waits, cancel runs, answer a callback)."""

from infra.lambda_functions import handle_events as handler

__all__ = ["handler"]
