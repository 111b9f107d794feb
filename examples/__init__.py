"""Example workflows from the seeds, on one app: `STEPLINE_APP=examples:app`.

- `onboarding`: seed 000's user onboarding (sleeps, a branch, a week-long drip).
- `billing`: seed 002's billing (sleep_until, a retried charge loop, parallel steps).
- `campaign`: seed 002's waitForEvent with a timeout, and cancel_on a user deletion.
- `orders`: an async workflow with parallel branches that invokes `billing`.
"""

from examples import billing, campaign, onboarding, orders  # noqa: F401  (registers them)
from examples.app import app

__all__ = ["app"]
