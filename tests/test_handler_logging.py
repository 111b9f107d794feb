"""Handlers log JSON lines (powertools) that say which run, workflow and step they are about."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest

from infra.local import LocalRuntime
from infra.logs import configure_lambda_logging, redact
from sdk import App, Context, Event, Retry
from tests.conftest import START


@pytest.fixture
def json_log():
    stream = io.StringIO()
    logger = configure_lambda_logging(stream)
    before = list(logger.handlers)
    yield stream
    for handler in logger.handlers:
        if handler not in before or getattr(handler, "stepline", False):
            logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def test_engine_log_lines_carry_run_function_and_step_ids(json_log):
    app = App("t")
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("try again")
        return "ok"

    @app.workflow("logged", trigger="go", retries=Retry(initial_delay="1s"))
    def flow(ctx: Context) -> str:
        ctx.logger.info("starting for %s", ctx.event.data["who"])
        return ctx.step.run("call-api", flaky)

    with LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go", data={"who": "ann", "secret": "s3cr3t"}))
        rt.advance(timedelta(seconds=5))
        assert rt.run(run_id).status == "COMPLETED"

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    engine_lines = [line for line in lines if line.get("queue") == "work"]
    assert engine_lines, lines
    for line in engine_lines:
        assert line["run_id"] == run_id
        assert line["function_id"] == "logged"
        assert line["service"] == "stepline"
    [retry] = [line for line in lines if "attempt 1 failed" in line["message"]]
    assert retry["step_id"] == "call-api" and retry["level"] == "WARNING"
    # The workflow's own logger wrote once, although the run was replayed on resume.
    assert sum("starting for ann" in line["message"] for line in lines) == 1
    # Event data never reaches the log at INFO.
    assert "s3cr3t" not in json_log.getvalue()


def test_redact_masks_named_fields_at_any_depth():
    data = {"card": "4242", "user": {"email": "a@b", "name": "Ann"}, "items": [{"card": "1"}]}
    assert redact(data, ["card", "email"]) == {
        "card": "***",
        "user": {"email": "***", "name": "Ann"},
        "items": [{"card": "***"}],
    }
