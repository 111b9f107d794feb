"""The web dashboard (`stepline ui`, also started by `stepline dev`).

| module | what it owns |
|---|---|
| `app` | the Flask app: pages, actions, the token and origin checks (its docstring lists the pages) |
| `backend` | what the pages read and do, on the table, the queues and the engine's operations |
| `timeline` | the run page's bars, per attempt, sleep and wait |
| `server` | werkzeug's threaded server in a thread; which addresses it may listen on |
| `templates/`, `static/` | Jinja2 pages, the stylesheet and the few lines of script that refresh them |

Flask and Jinja2 come with the `ui` extra (which `local` and `dev` pull in).
"""

from infra.local.ui.app import create_app
from infra.local.ui.backend import Backend
from infra.local.ui.server import DEFAULT_PORT, UiServer, UnsafeAddressError, check_address

__all__ = [
    "DEFAULT_PORT",
    "Backend",
    "UiServer",
    "UnsafeAddressError",
    "check_address",
    "create_app",
]
