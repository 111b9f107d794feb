"""Local tooling: Stepline off Lambda, on embedded moto, a moto server or any endpoint.

    from infra.local import LocalRuntime

This package sits above everything else in `infra/`: it uses the adapters, the wiring
and the Lambda functions, and nothing in `infra/` outside it imports it
(tests/test_layers.py checks both directions).

| module | what it owns |
|---|---|
| `runtime` | `LocalRuntime`: the whole of Stepline on embedded moto with virtual time |
| `lambda_service` | playing the Lambda service: SQS batches to the functions of infra/lambda_functions.py, due Scheduler schedules to their queue |
| `worker` | long-running workers, one thread per queue, and the timer pump (`stepline dev`, `stepline worker`) |
| `cli/` | the `stepline` command line, one module per command group |
| `render/` | the audit-trail timeline and run tables (rich), for the CLI and the demo |
"""

from infra.local.runtime import LocalRuntime, LocalRuntimeError

__all__ = ["LocalRuntime", "LocalRuntimeError"]
