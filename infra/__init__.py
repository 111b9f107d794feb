"""Adapters and tools around the pure engine: DynamoDB, SQS, EventBridge Scheduler and
EventBridge adapters, settings, wiring, the local runtime on moto, and the CLI.

Only this package and `handlers/` import boto3; no `ClientError` leaves it.
"""
