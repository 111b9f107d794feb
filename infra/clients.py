"""boto3 clients: created on first use, once per process (a Lambda cold start), typed.

Each client is created the first time it is asked for, so a process pays only for the
services it calls (the events function creates a Scheduler client only when a flow
control arms a timer). The types
come from boto3-stubs (`mypy_boto3_*`, a dev dependency): they are imported for the type
checker only, and the Lambda package does not carry them.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from infra.settings import Settings

if TYPE_CHECKING:
    from boto3.session import Session
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient

__all__ = ["CLIENT_CONFIG", "Clients"]

# Standard mode retries throttling with backoff and jitter; a few more attempts than the
# default ride out short bursts before the engine gives the message back to SQS.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 6},
    connect_timeout=5,
    read_timeout=20,
    # Enough connections for every thread that may call at once: the runs of a batch
    # handled concurrently (Settings.batch_concurrency, 10), each with its parallel
    # branches (EngineSettings.max_parallel_threads, 16), plus the lease and visibility
    # heartbeats. Fewer, and botocore drops and reopens a connection on every call beyond
    # the pool (a `parallel` of 16 branches did so for 6 of them on each call).
    max_pool_connections=10 * 16 + 8,
)


class Clients:
    """The four boto3 clients Stepline uses, each created on first use.

    `session` defaults to boto3's default session (what `boto3.client` uses); the region
    and endpoint come from the settings when they name one.
    """

    def __init__(
        self, settings: Settings, session: Session | None = None, config: Config = CLIENT_CONFIG
    ) -> None:
        self._settings = settings
        self._given_session = session
        self._config = config

    def _session(self) -> Session:
        if self._given_session is not None:
            return self._given_session
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        return boto3.DEFAULT_SESSION

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return self._session().client(
            "dynamodb",
            region_name=self._settings.region,
            endpoint_url=self._settings.endpoint_url,
            config=self._config,
        )

    @cached_property
    def sqs(self) -> SQSClient:
        return self._session().client(
            "sqs",
            region_name=self._settings.region,
            endpoint_url=self._settings.endpoint_url,
            config=self._config,
        )

    @cached_property
    def scheduler(self) -> EventBridgeSchedulerClient:
        return self._session().client(
            "scheduler",
            region_name=self._settings.region,
            endpoint_url=self._settings.endpoint_url,
            config=self._config,
        )

    @cached_property
    def events(self) -> EventBridgeClient:
        return self._session().client(
            "events",
            region_name=self._settings.region,
            endpoint_url=self._settings.endpoint_url,
            config=self._config,
        )
