"""What every `stepline` command shares: exit codes, options, errors and connecting.

`errors` turns the failures a command may meet into a one-line message and the exit
code the package docstring documents (`Exit`); `connect` builds the settings and boto3
clients for an endpoint (moto, LocalStack) or for real AWS, finding or creating the
resources by prefix.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from engine.errors import (
    AccessDeniedError,
    PermanentError,
    ResourceMissingError,
    TransientError,
    UnreachableError,
)
from infra.clients import Clients
from infra.dynamo import DynamoStore
from infra.logs import Redact, quiet_expression_library
from infra.resources import create_resources, discover_resources
from infra.settings import ConfigurationError, Settings
from infra.wiring import Services, build_services
from sdk import App

P = ParamSpec("P")
R = TypeVar("R")
LOCAL_REGION = "us-east-1"
# A person is waiting: fail fast on an endpoint that is not there (workers keep the
# patient defaults of infra/wiring.py).
INTERACTIVE_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3)


class Exit(IntEnum):
    OK = 0
    REFUSED = 1
    USAGE = 2
    NOT_FOUND = 3
    UNREACHABLE = 4
    CONFIG = 5


def version() -> str:
    try:
        return importlib.metadata.version("stepline")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


EndpointOption = typer.Option(
    None,
    "--endpoint",
    envvar="AWS_ENDPOINT_URL",
    help="AWS endpoint, e.g. http://127.0.0.1:4566 for `stepline dev`; omit for real AWS.",
)
RegionOption = typer.Option(None, "--region", envvar="AWS_REGION", help="AWS region.")
PrefixOption = typer.Option(
    "stepline",
    "--prefix",
    envvar="STEPLINE_PREFIX",
    help="Name prefix of the table, queues and schedule group on an endpoint.",
)
JsonOption = typer.Option(False, "--json", help="Print JSON instead of tables.")


def fail(code: Exit, message: str) -> NoReturn:
    typer.echo(f"stepline: {message}", err=True)
    raise typer.Exit(int(code))


def errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn known failures into a one-line message and the documented exit code."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except ConfigurationError as error:
            fail(Exit.CONFIG, str(error))
        except (EndpointConnectionError, ConnectionError, UnreachableError) as error:
            fail(Exit.UNREACHABLE, f"cannot reach {where()}: {error}. {reach_hint()}")
        except TransientError as error:
            fail(Exit.REFUSED, str(error))
        except (NoCredentialsError, NoRegionError) as error:
            fail(
                Exit.CONFIG,
                f"{error}. Configure AWS credentials and a region (AWS_PROFILE, AWS_REGION), "
                "or pass --endpoint to use a local server.",
            )
        except (ResourceMissingError, AccessDeniedError) as error:
            fail(Exit.CONFIG, f"{error}. {reach_hint()}")
        except (PermanentError, ClientError) as error:
            fail(Exit.REFUSED, str(error))

    return wrapper


def where() -> str:
    return os.environ.get("AWS_ENDPOINT_URL") or "AWS"


def dev_environment(endpoint: str) -> str:
    """What plain boto3 needs to reach a dev server: the endpoint, a region and (any)
    credentials. boto3 reads AWS_DEFAULT_REGION, not AWS_REGION."""
    return (
        f"export AWS_ENDPOINT_URL={endpoint} AWS_DEFAULT_REGION={LOCAL_REGION} "
        "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing"
    )


def reach_hint() -> str:
    if os.environ.get("AWS_ENDPOINT_URL"):
        return "Is `stepline dev` (or moto_server) running there?"
    return "Check your credentials and region, or pass --endpoint for a local server."


# -- connecting ----------------------------------------------------------------------------


@dataclass
class Connection:
    settings: Settings
    clients: Clients
    queue_urls: dict[str, str]

    @property
    def store(self) -> DynamoStore:
        return DynamoStore(self.clients.dynamodb, self.settings.table)

    def services(self, app: App | None = None) -> Services:
        return build_services(app or App("stepline-cli"), self.settings, clients=self.clients)


def connect(
    endpoint: str | None,
    region: str | None,
    prefix: str,
    *,
    create: bool = False,
    config: Config = INTERACTIVE_CONFIG,
) -> Connection:
    """Settings and clients for an endpoint (moto, LocalStack) or for real AWS."""
    settings = Settings.from_env()
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        # moto accepts any credentials; do not make people invent some.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        settings = settings.model_copy(
            update={"endpoint_url": endpoint, "region": region or settings.region or LOCAL_REGION}
        )
    elif region:
        settings = settings.model_copy(update={"region": region})
    clients = Clients(settings, config=config)
    queue_urls: dict[str, str] = {}
    if create:
        created = create_resources(clients, prefix, bus=settings.event_bus)
        settings = created.settings.model_copy(
            update={"endpoint_url": settings.endpoint_url, "region": settings.region}
        )
        queue_urls = created.queue_urls
    elif endpoint and not os.environ.get("STEPLINE_WORK_QUEUE_URL"):
        try:
            found = discover_resources(clients, prefix, bus=settings.event_bus)
        except ClientError as error:
            if "NonExistentQueue" in str(error) or "QueueDoesNotExist" in str(error):
                raise ConfigurationError(
                    f"no Stepline queues named {prefix}-* at {endpoint}: start `stepline dev`, "
                    "or run `stepline worker --create-resources`, or pass --prefix"
                ) from None
            raise
        settings = found.settings.model_copy(
            update={"endpoint_url": settings.endpoint_url, "region": settings.region}
        )
        queue_urls = found.queue_urls
    return Connection(
        settings=settings, clients=Clients(settings, config=config), queue_urls=queue_urls
    )


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def configure_console_logging(verbose: bool) -> None:
    """Log Stepline's lines to stderr, masked and capped as in Lambda (`stepline dev`, `worker`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    # Masks the values of STEPLINE_REDACT_FIELDS and caps long lines, as in Lambda.
    handler.addFilter(Redact())
    quiet_expression_library()
    logger = logging.getLogger("stepline")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    # moto's server logs every request; nobody wants that in a dev console.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
