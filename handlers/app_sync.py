"""Lambda entry point of the `CronSchedules` and `EventRules` custom resources: on every
deploy, makes the stack's cron schedules and bus rules those of the app."""

from infra.lambda_functions import handle_app_sync as handler

__all__ = ["handler"]
