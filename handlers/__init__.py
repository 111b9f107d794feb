"""Thin Lambda entry points, one per SQS queue: `engine` (work queue), `trigger`,
`waits` and `cancel` (event queues). Each parses its records, calls the engine and
returns a partial batch response."""
