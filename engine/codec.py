"""Turning step and run outputs into the JSON that is stored and replayed."""

from __future__ import annotations

import json
from typing import Any

import pydantic_core

from engine.errors import OutputNotSerializableError, OutputTooLargeError


def to_stored_json(what: str, value: Any, *, max_bytes: int) -> Any:
    """The JSON form of `value` as it will be stored and replayed.

    Pydantic models, dataclasses, datetimes and the like are converted; the result is
    round-tripped through JSON text so the first run sees exactly what a replay will.
    """
    try:
        plain = pydantic_core.to_jsonable_python(value)
        text = json.dumps(plain, ensure_ascii=False, allow_nan=False)
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as error:
        raise OutputNotSerializableError(
            f"{what} returned a {type(value).__name__}, which is not JSON-serialisable "
            f"({error}). Return plain data (dict, list, str, number, bool, None), a "
            "pydantic model or a dataclass."
        ) from None
    size = len(text.encode())
    if size > max_bytes:
        raise OutputTooLargeError(
            f"{what} returned {size:,} bytes of JSON; the limit is {max_bytes:,} bytes "
            "(a DynamoDB item holds 400 KB). Store large data elsewhere (S3, your "
            "database) and return a reference."
        )
    return json.loads(text)
