"""Lambda entry point of the engine (work queue): advances the run each message names."""

from infra.lambda_functions import handle_work as handler

__all__ = ["handler"]
