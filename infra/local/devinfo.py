"""What `stepline dev` records about itself in its table, for the tools that come later.

`stepline dev` writes its app (`MODULE:APP`), its folder and its dashboard's URL into
the table (infra/dynamo_operator.py, `STEPLINE#DEV`), so that `stepline runs replay` and
`stepline ui` against the dev server need no `--app`: they import the app the server
runs, from the folder it runs in.
"""

from __future__ import annotations

import os
import sys

from infra.dynamo import DynamoStore
from infra.settings import ConfigurationError
from infra.wiring import load_app
from sdk import App


def record(store: DynamoStore, *, app: str, ui_url: str | None) -> None:
    info = {"app": app, "cwd": os.getcwd(), "pid": str(os.getpid())}
    if ui_url:
        info["ui"] = ui_url
    store.put_dev_info(info)


def app_spec(store: DynamoStore, given: str | None) -> str | None:
    """`given`, else the app the dev server on this table runs (its folder made importable)."""
    if given:
        return given
    info = store.get_dev_info()
    if not info:
        return None
    folder = info.get("cwd")
    if folder and folder not in sys.path:
        sys.path.insert(0, folder)
    return info.get("app")


def app_for(store: DynamoStore, given: str | None) -> App:
    """The App to act with: `--app` (or STEPLINE_APP), else the dev server's."""
    spec = app_spec(store, given)
    if spec is None:
        raise ConfigurationError(
            "no app given: pass --app MODULE:APP (or set STEPLINE_APP); against `stepline dev` "
            "it is found by itself, but no dev server has recorded one on this table"
        )
    return load_app(spec)
