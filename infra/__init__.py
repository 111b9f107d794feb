"""Everything around the pure engine that touches AWS, in three tiers; each imports only
from the tiers below it (tests/test_layers.py checks it).

1. Adapters, one per service, each implementing ports of `engine/ports.py`:
   `dynamo` (the store, match index and event log), `sqs` (the work queue), `timers`
   (SQS delays and EventBridge Scheduler), `eventbridge` (the bus, and `Event` on the
   wire), `visibility` (SQS visibility heartbeats); with `aws_errors` (AWS errors to the
   engine's), `clock`, `settings` (STEPLINE_*), `resources` (the table, queues, rules
   and schedule group as data) and `logs`. `wiring` assembles them into `Services`.
2. The Lambda functions: `lambda_batch` (services per cold start, the SQS batch loop,
   partial batch responses) and `lambda_functions` (the four functions' bodies), which
   the entry points of `handlers/` name for Lambda.
3. `local/`: tooling off Lambda (`LocalRuntime`, the local Lambda service, workers, the
   `stepline` CLI, rendering).

Only this package and `handlers/` import boto3; no `ClientError` leaves it.
"""
