"""Lambda entry point of the `CronSchedules` custom resource: on every deploy, makes the
stack's cron schedules those of the app's Crons."""

from infra.lambda_functions import handle_cron_schedules as handler

__all__ = ["handler"]
