"""What botocore raises, classified by type into the engine's error contract.

Every adapter turns a failed AWS call into a `TransientError` (retrying may fix it:
throttling, a 5xx, a timeout; `UnreachableError` when the endpoint could not be
connected to) or a `PermanentError` (retrying will not: `ItemTooLargeError`,
`ResourceMissingError`, `AccessDeniedError`, `InvalidRequestError`), chosen by the
exception class and the AWS error code, never by the text of the message. (DynamoDB
reports an item over 400 KB with the generic `ValidationException`; only there does the
message tell which validation failed.) See engine/errors.py for what each one makes the
engine do.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from engine.errors import (
    AccessDeniedError,
    InvalidRequestError,
    ItemTooLargeError,
    PermanentError,
    ResourceMissingError,
    TransientError,
    UnreachableError,
)

TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "AWS.SimpleQueueService.RequestThrottled",
        "KMS.KMSThrottlingException",
        "SlowDown",
        "TransactionInProgressException",
        "TransactionConflictException",
        "InternalServerError",
        "InternalServerException",
        "InternalFailure",
        "InternalError",
        "InternalException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
ACCESS_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "AuthFailure",
        "AuthorizationError",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "KMS.AccessDeniedException",
        "KMS.DisabledException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "NotAuthorized",
        "OptInRequired",
        "SignatureDoesNotMatch",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
    }
)
MISSING_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NonExistentQueue",
        "NotFoundException",
    }
)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def aws_error(
    error: ClientError | BotoCoreError, *, service: str, resource: str
) -> TransientError | PermanentError:
    """The contract's exception for a failed call to `service` on `resource`.

    `resource` names what was called in words, e.g. "table 'stepline'"; messages say
    what to do about the failure.
    """
    if isinstance(error, BotoCoreError):
        if isinstance(error, BotoConnectionError):
            return UnreachableError(f"{service} unreachable ({resource}): {error}")
        if isinstance(error, NoCredentialsError | PartialCredentialsError):
            return AccessDeniedError(
                f"{service}: {error}. Configure AWS credentials (AWS_PROFILE, the function's "
                "role), or pass --endpoint to use a local server"
            )
        if isinstance(error, ParamValidationError):
            return InvalidRequestError(f"{service} request refused before sending: {error}")
        return TransientError(f"{service} call failed ({resource}): {error}")
    code = error_code(error)
    message = error.response.get("Error", {}).get("Message", "")
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    text = f"{service} {code}: {message}"
    if code in TRANSIENT_CODES or status >= 500 or status == 429:
        return TransientError(text)
    if code in ACCESS_CODES:
        return AccessDeniedError(
            f"{text}. The credentials in use lack a permission on {resource}: grant it to "
            "the function's role (template.yaml lists what each function needs)"
        )
    if code in MISSING_CODES:
        return ResourceMissingError(
            f"{text}. {resource[:1].upper()}{resource[1:]} does not exist: check the "
            "STEPLINE_* settings and the region, and that the stack is deployed"
        )
    if code == "ValidationException" and "item size" in message.lower():
        return ItemTooLargeError(f"{service} refused an item over its size limit: {message}")
    return InvalidRequestError(f"{text} ({resource})")
