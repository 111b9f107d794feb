"""The dev loop around `stepline dev`: the banner's example event, saving state, reloading.

- `example_event(app)`: a `stepline send` argument list for one of the app's own
  triggers, with data made from what its workflow reads: the fields of `ctx.event.data`
  its source names, the equalities of its trigger's `if_` (so the example passes them),
  and the fields its `cancel_on` rules match on.
- `Saver`: saves the dev state (infra/local/devstate.py) every few seconds in a thread,
  and once more when stopped.
- `Reloader`: runs the workers as a `stepline worker` child process and restarts it when
  a Python file of the app changes (the files of the modules importing the app loaded
  from the project's folder, and new files beside them). The moto server, its data and
  the dashboard stay up, so state is kept; a worker stops gracefully (its batches in hand
  finish), so no claim is left for the next one to wait out.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from infra.local.devstate import DevState
from sdk import App

log = logging.getLogger("stepline.dev")

_READS = re.compile(
    r"event\.data(?:\[\s*['\"]([A-Za-z_][\w-]*)['\"]\s*\]|\.get\(\s*['\"]([A-Za-z_][\w-]*)['\"])"
)
_EQUALS = re.compile(
    r"event\.data\.([A-Za-z_]\w*)\s*==\s*('([^']*)'|\"([^\"]*)\"|-?\d+(?:\.\d+)?|true|false)"
)


def _placeholder(key: str) -> object:
    if key.lower().endswith("id") and len(key) > 2:
        return f"{key[:-2].rstrip('_-').lower() or 'x'}-1"
    return f"{key}-1"


def example_data(app: App, workflow_id: str, event_name: str) -> dict[str, object]:
    workflow = app.get(workflow_id)
    if workflow is None:
        return {}
    data: dict[str, object] = {}
    try:
        source = inspect.getsource(workflow.fn)
    except (OSError, TypeError):
        source = ""
    for match in _READS.finditer(source):
        key = match.group(1) or match.group(2)
        data.setdefault(key, _placeholder(key))
    for rule in workflow.cancel_on:
        if rule.match and rule.match.startswith("data.") and "." not in rule.match[5:]:
            key = rule.match[5:]
            data.setdefault(key, _placeholder(key))
    for trigger in workflow.triggers:
        if trigger.event != event_name or trigger.if_ is None:
            continue
        for match in _EQUALS.finditer(trigger.if_.source):
            key, literal = match.group(1), match.group(2)
            text = match.group(3) if match.group(3) is not None else match.group(4)
            data[key] = text if text is not None else json.loads(literal)
    return data


def example_event(app: App) -> str:
    """`NAME --data 'JSON'` for an event this app is triggered by."""
    candidates = []
    for workflow in app.workflows.values():
        for trigger in workflow.triggers:
            data = example_data(app, workflow.id, trigger.event)
            candidates.append((-len(data), trigger.event, data))
    if not candidates:
        return "my/event --data '{}'"
    _, name, data = min(candidates, key=lambda c: (c[0], c[1]))
    return f"{name} --data '{json.dumps(data)}'"


class Saver:
    """Saves the dev state every `every` seconds in a thread, and once when stopped."""

    def __init__(self, state: DevState, *, app: str, every: float) -> None:
        self.state = state
        self.app = app
        self.every = every
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="stepline-saver", daemon=True)

    def start(self) -> Saver:
        self._thread.start()
        return self

    def save(self) -> None:
        with self._lock:
            try:
                self.state.save(app=self.app)
            except Exception as error:
                log.warning("could not save the dev state to %s: %s", self.state.directory, error)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.save()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.save()


def watched_files(root: Path) -> set[Path]:
    """The Python files under `root` that are loaded now (the app's own modules), outside
    virtualenvs, plus the other .py files of their folders (a new module beside them)."""
    root = root.resolve()
    loaded: set[Path] = set()
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if not name:
            continue
        path = Path(name).resolve()
        if root in path.parents and not {"site-packages", ".venv", "venv"} & set(path.parts):
            loaded.add(path)
    for folder in {path.parent for path in loaded}:
        loaded.update(folder.glob("*.py"))
    return loaded


def _mtimes(files: set[Path]) -> dict[Path, float]:
    stamps = {}
    for path in files:
        try:
            stamps[path] = path.stat().st_mtime
        except OSError:
            stamps[path] = -1.0
    return stamps


class Reloader:
    """Workers in a child process, restarted when the app's files change."""

    def __init__(
        self,
        worker_args: list[str],
        *,
        root: Path,
        on_reload: Callable[[], None] = lambda: None,
        interval: float = 0.5,
    ) -> None:
        self.worker_args = worker_args
        self.root = root
        self.on_reload = on_reload
        self.interval = interval
        self.restarts = 0
        self._child: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stepline-reload", daemon=True)

    def start(self) -> Reloader:
        self._spawn()
        self._thread.start()
        return self

    def _spawn(self) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-m", "infra.local.cli", "worker", *self.worker_args],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def _halt_child(self) -> None:
        child = self._child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGINT)
        try:
            child.wait(35)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)

    def _watch(self) -> None:
        files = watched_files(self.root)
        stamps = _mtimes(files)
        while not self._stop.wait(self.interval):
            files |= watched_files(self.root)
            current = _mtimes(files)
            changed = sorted(str(p) for p, t in current.items() if stamps.get(p) != t)
            if not changed:
                continue
            stamps = current
            shown = ", ".join(os.path.relpath(name, self.root) for name in changed[:3])
            sys.stdout.write(f"stepline dev: {shown} changed; restarting the workers\n")
            sys.stdout.flush()
            self._halt_child()
            self.on_reload()
            self._spawn()
            self.restarts += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._halt_child()
