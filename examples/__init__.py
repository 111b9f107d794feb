"""Example workflows from the seeds, on one app: `STEPLINE_APP=examples:app`.

- `onboarding`: seed 000's user onboarding (sleeps, a branch, a week-long drip).
- `billing`: seed 002's billing (sleep_until, a retried charge loop, parallel steps).
- `campaign`: seed 002's waitForEvent with a timeout, and cancel_on a user deletion.
- `orders`: an async workflow with parallel branches that invokes `billing`.
- `approval`: an expense approval that waits for a manager's answer (a callback).
- `payouts`: a map over the week's sellers with a completion policy (a `BatchResult`).
"""

from examples import (  # noqa: F401  (registers them)
    approval,
    billing,
    campaign,
    onboarding,
    orders,
    payouts,
)
from examples.app import app

__all__ = ["app"]
