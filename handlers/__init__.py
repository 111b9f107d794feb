"""Lambda entry points, one per SQS queue: `engine` (work queue) and `events` (the events
queue); and `app_sync`, which CloudFormation calls (the CronSchedules and EventRules
custom resources). template.yaml names them (`Handler: handlers.engine.handler`).

Each module only names its function's body, which lives in infra/lambda_functions.py
(the batch loop in infra/lambda_batch.py). Nothing in the project imports this package:
the local Lambda service (infra/local/) calls those functions itself, and
tests/test_layers.py checks that no module does.
"""
