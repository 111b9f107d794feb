"""Lambda entry point fed by the cancel queue: cancels runs whose `cancel_on` an event matches."""

from infra.lambda_functions import handle_cancel as handler

__all__ = ["handler"]
