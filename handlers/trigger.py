"""Lambda entry point fed by the trigger queue: starts the runs an event triggers."""

from infra.lambda_functions import handle_trigger as handler

__all__ = ["handler"]
