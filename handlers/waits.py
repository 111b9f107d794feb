"""Lambda entry point fed by the waits queue: resolves the `wait_for_event` steps an
event matches."""

from infra.lambda_functions import handle_waits as handler

__all__ = ["handler"]
