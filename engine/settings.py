"""Tunables of the engine, with the defaults a Lambda deployment uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

# DynamoDB items hold 400 KB (moto enforces ~405,000 bytes). A step record is its output
# plus a few hundred bytes of bookkeeping, so outputs stop well short of the limit.
MAX_OUTPUT_BYTES = 350_000


@dataclass(frozen=True)
class EngineSettings:
    # Suspend and re-enqueue when less than this much of the invocation remains, so a
    # run leaves the Lambda before its timeout instead of being killed mid-step.
    suspend_margin: timedelta = timedelta(seconds=30)
    # How long a RUNNING lease lasts unless its holder renews it (every third of this,
    # for as long as the invocation works): how soon a crashed holder's run is taken
    # over by a delivery in another process.
    lease_duration: timedelta = timedelta(seconds=60)
    # How stale a running invocation's view of its run may be when a new step starts:
    # a cancel recorded this long before the step is seen and the step does not start.
    control_interval: timedelta = timedelta(milliseconds=500)
    # How far back a new wait (or a new run's cancel_on) looks for events that arrived
    # before it was registered; also how long the event log keeps events.
    lookback: timedelta = timedelta(hours=24)
    max_output_bytes: int = MAX_OUTPUT_BYTES
    # Threads a sync `parallel` uses at most; more branches queue for a thread.
    max_parallel_threads: int = 16
    # How often one invocation may re-replay after a concurrent change to its run.
    max_reloads: int = 8
    # Fields of event data and step outputs whose values are masked in every log line
    # (STEPLINE_REDACT_FIELDS; see engine/logcontext.py).
    redact_fields: tuple[str, ...] = ()


# A run's history past this many steps makes each resume noticeably slower (every resume
# loads and replays all of it): the engine logs a warning and `runs show` suggests
# `ctx.continue_as_new`.
HISTORY_WARNING_STEPS = 1_000
