"""The golden histories of the example workflows: tests/golden/*.json.

They are the runs of `python -m examples.demo`, exported (engine/history_file.py) twice:
while in flight, right after their events (`*-in-flight.json`), and when the demo ends
(`*-done.json`). `tests/test_check_cli.py` replays them against the examples with
`stepline check --history tests/golden`, so a change to an example that would break the
runs a deployment has in flight fails the tests. After changing an example on purpose
(behind `ctx.patched`, or knowing no such run is in flight), keep the files that still
replay and add new ones:

    python -m tests.golden_histories          # writes tests/golden/
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.history_file import history_document
from examples import app, services
from infra.local import LocalRuntime
from sdk import Event

FOLDER = Path(__file__).resolve().parent / "golden"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# (file name, event) for each run, as examples/demo.py starts them.
EVENTS = [
    ("onboarding-inactive", Event(name="user/signup", data={"userId": "ada"})),
    ("billing-retried", Event(
        name="billing/invoice.created",
        data={"accountId": "acct-42", "amount": 4900, "invoiceDate": "2026-03-04T09:00:00+00:00"},
    )),
    ("campaign-profiled", Event(name="app/user.signup", data={"userId": "linus"})),
    ("campaign-deleted", Event(name="app/user.signup", data={"userId": "ken"})),
    ("order-shipped", Event(name="shop/order.placed", data={
        "customerId": "acct-7", "amount": 1200, "skus": ["tea", "cup"],
        "placedAt": START.isoformat(),
    })),
]  # fmt: skip


def record(folder: Path = FOLDER) -> list[Path]:
    """Run the examples and write their histories to `folder`; returns the files."""
    services.reset()
    services.payments.script["acct-42"] = [False, False, True]
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def export(rt: LocalRuntime, run_id: str, name: str) -> None:
        loaded = rt.services.store.load(run_id)
        assert loaded is not None
        path = folder / f"{name}.json"
        path.write_text(json.dumps(history_document(loaded, app=app.name), indent=1) + "\n")
        written.append(path)

    with LocalRuntime(app, start=START) as rt:
        runs = {name: rt.send(event)[0] for name, event in EVENTS}
        rt.advance(timedelta(hours=3))
        for name, run_id in runs.items():
            export(rt, run_id, f"{name}-in-flight")
        rt.send(Event(name="app/user.profile.completed", data={"userId": "linus"}))
        rt.advance(timedelta(days=2))
        rt.send(Event(name="app/user.deleted", data={"userId": "ken"}))
        rt.advance(timedelta(days=12))
        for name, run_id in runs.items():
            export(rt, run_id, f"{name}-done")
    return written


if __name__ == "__main__":
    for path in record(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER):
        print(path)
