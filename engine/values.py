"""What an operation records for a value, and what it hands back: JSON, or a serdes's text.

Without a serdes a value is stored as its JSON form (engine/codec.py) and that form is
what the workflow gets. With one (sdk/_serdes.py), the record holds the text
`serialize(value)` returns and the workflow gets `deserialize(text)`, on the first run
and on every replay alike. Either way the stored form is held to the output size limit.
"""

from __future__ import annotations

import json
from typing import Any

from engine.codec import to_stored_json
from engine.errors import OutputNotSerializableError
from sdk import Serdes


def to_record(what: str, value: Any, serdes: Serdes | None, *, max_bytes: int) -> Any:
    """The stored form of `value` (StepOutputError if it cannot be stored)."""
    if serdes is None:
        return to_stored_json(what, value, max_bytes=max_bytes)
    try:
        text = serdes.serialize(value)
    except Exception as error:
        raise OutputNotSerializableError(
            f"{what}: {type(serdes).__name__}.serialize raised {type(error).__name__}: {error}"
        ) from None
    if not isinstance(text, str):
        raise OutputNotSerializableError(
            f"{what}: {type(serdes).__name__}.serialize returned a {type(text).__name__}; "
            "a serdes turns a value into text (str)"
        )
    return to_stored_json(what, text, max_bytes=max_bytes)


def from_record(stored: Any, serdes: Serdes | None) -> Any:
    """The value the workflow gets for a stored form."""
    if serdes is None:
        return stored
    if stored is not None and not isinstance(stored, str):
        # Given from outside as JSON (a callback's result, a child's output): its text.
        stored = json.dumps(stored, separators=(",", ":"), ensure_ascii=False)
    return serdes.deserialize(stored)
