"""Rendering runs for people: the audit-trail timeline and run tables (rich).

Used by the demo and by `stepline runs show/list`. The layout follows the width it is
given (the terminal's), and an id is never cut or broken inside: a table is drawn only
when every id fits whole in its column, dropping its least useful columns first;
otherwise each row becomes a block of `field value` pairs, wrapped only between
fields. Output previews are cut to a width (`--json` on the CLI gives the full values);
tracebacks are folded, never cut.

| module | what it owns |
|---|---|
| `layout` | `Rows`, `Column`, `Fields`: the width-aware table-or-blocks layout |
| `views` | `timeline` (one run's audit trail), `runs_table`, `show`, `console`, and the formatting of statuses, times, durations and previews |
"""

from infra.local.render.layout import Column, Fields, Rows
from infra.local.render.views import (
    STATUS_STYLE,
    Timeline,
    console,
    duration,
    preview,
    runs_table,
    show,
    timeline,
    when,
)

__all__ = [
    "STATUS_STYLE",
    "Column",
    "Fields",
    "Rows",
    "Timeline",
    "console",
    "duration",
    "preview",
    "runs_table",
    "show",
    "timeline",
    "when",
]
