"""Custom serialisation of what a step records: any object with `serialize` and `deserialize`.

    class Encrypted:
        def serialize(self, value) -> str: ...
        def deserialize(self, text: str): ...

    ctx.step.run("load", load_card, serdes=Encrypted())

With a serdes, the step's record holds the text `serialize(value)` returns, and the
workflow always gets `deserialize(text)` back, on the first run and on every replay
alike. Without one, values are stored as JSON (the default). The text counts against
the same size limit as a JSON output.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from sdk._errors import WorkflowDefinitionError


@runtime_checkable
class Serdes(Protocol):
    """Turns a value into the text a record stores, and back."""

    def serialize(self, value: Any) -> str: ...

    def deserialize(self, text: str) -> Any: ...


def check_serdes(serdes: object, *, what: str) -> Serdes | None:
    """`serdes` if it is one (or None); a WorkflowDefinitionError otherwise."""
    if serdes is None:
        return None
    if not (
        callable(getattr(serdes, "serialize", None))
        and callable(getattr(serdes, "deserialize", None))
    ):
        raise WorkflowDefinitionError(
            f"{what}: {serdes!r} is not a serdes: give an object with serialize(value) -> str "
            "and deserialize(text) -> value"
        )
    return serdes  # type: ignore[return-value]
