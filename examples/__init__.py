"""Example workflows from the seeds, on one app: `STEPLINE_APP=examples:app`."""

from examples import billing, onboarding  # noqa: F401  (registers the workflows)
from examples.app import app

__all__ = ["app"]
