"""Handlers log JSON lines (powertools) that say which run, workflow and step they are about."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest

from infra.local import LocalRuntime
from infra.logs import MAX_EXCEPTION_CHARS, MAX_MESSAGE_CHARS, configure_lambda_logging, redact
from sdk import App, Context, Event, Retry, Trigger
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


# -- redaction: no log line carries a redacted field's value ---------------------------

CARD = "4111111111111111"


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_an_expression_that_fails_on_an_event_is_logged_without_its_operands(json_log):
    app = App("t")
    app.workflow("card-check", trigger=Trigger("pay", if_="int(event.data.card) > 0"))(
        lambda ctx: None
    )
    with LocalRuntime(app, start=START) as rt:
        assert rt.send(Event(name="pay", data={"card": "4111-1111-1111-1111"}, id="e-1")) == []
    [line] = [
        line
        for line in _lines(json_log)
        if "could not be evaluated" in line["message"] and line.get("queue") == "events"
    ]
    assert line["level"] == "WARNING"
    assert "'card-check'" in line["message"] and "int(event.data.card) > 0" in line["message"]
    assert "e-1" in line["message"] and "no match" in line["message"]
    # Not the operand, redacted or not.
    assert "4111" not in json_log.getvalue()


def test_a_failing_step_logs_neither_redacted_values_nor_its_whole_message(json_log):
    app = App("t")

    def charge(card: str) -> None:
        raise ValueError(f"card {card} was declined: " + "x" * 120_000)

    @app.workflow("pay", trigger="pay", retries=Retry(max_attempts=2, initial_delay="1s"))
    def flow(ctx: Context) -> None:
        ctx.logger.info("charging card %s for %s", ctx.event.data["card"], ctx.event.data["who"])
        ctx.step.run("charge", charge, ctx.event.data["card"])

    with LocalRuntime(app, start=START, settings={"redact_fields": ("card",)}) as rt:
        [run_id] = rt.send(Event(name="pay", data={"card": CARD, "who": "ann"}))
        rt.advance(timedelta(seconds=5))
        assert rt.run(run_id).status == "FAILED"
        # The run's own record keeps the error as it was (only the log is masked).
        assert CARD in rt.run(run_id).error.message

    text = json_log.getvalue()
    assert CARD not in text
    lines = _lines(json_log)
    assert any("charging card *** for ann" in line["message"] for line in lines)
    [retry] = [line for line in lines if "attempt 1 failed" in line["message"]]
    assert "card *** was declined" in retry["message"]
    assert retry["message"].endswith("more characters")
    [failed] = [
        line for line in lines if "failed:" in line["message"] and "run " in line["message"]
    ]
    assert "card *** was declined" in failed["message"]
    for line in lines:
        assert len(line["message"]) <= MAX_MESSAGE_CHARS + 40


def test_an_unexpected_error_is_logged_masked_and_capped_with_its_traceback(json_log):
    """A handler's log.exception line: the exception text and its chained causes."""
    app = App("t")

    def charge(card: str) -> None:
        raise ValueError(f"card {card} was declined: " + "x" * 120_000)

    @app.workflow("pay", trigger="pay", retries=Retry(max_attempts=1))
    def flow(ctx: Context) -> None:
        ctx.step.run("charge", charge, ctx.event.data["card"])

    class BrokenStore:
        """Writing the failed run raises an error that quotes what it was given."""

        def __init__(self, inner):
            self._inner = inner

        def write_run(self, run, **kwargs):
            if run.status.value == "FAILED":
                raise RuntimeError(f"could not store run {run.run_id}: {run.error.message}")
            return self._inner.write_run(run, **kwargs)

        def __getattr__(self, name):
            return getattr(self._inner, name)

    def broken(ports):
        from dataclasses import replace

        return replace(ports, store=BrokenStore(ports.store))

    with LocalRuntime(
        app, start=START, settings={"redact_fields": ("card",)}, ports_hook=broken
    ) as rt:
        rt.send(Event(name="pay", data={"card": CARD}))

    assert CARD not in json_log.getvalue()
    errors = [line for line in _lines(json_log) if line["level"] == "ERROR"]
    assert errors
    for line in errors:
        assert "Traceback" in line["exception"]
        assert "could not store run" in line["exception"]
        assert "card *** was declined" in line["exception"]
        assert "more characters" in line["exception"]
        assert len(line["exception"]) <= MAX_EXCEPTION_CHARS + 60
        assert line["exception_name"] == "RuntimeError"


def test_redacted_values_are_masked_wherever_they_came_from(json_log):
    """Numbers and nested values, step outputs (now and when replayed), waited-for events."""
    app = App("t")

    @app.workflow("onboard", trigger="signup")
    def flow(ctx: Context) -> None:
        account = ctx.step.run("open-account", lambda: {"iban": "DE89370400440532013000"})
        ctx.logger.info("opened %s", account)
        ctx.step.sleep("later", "1m")
        got = ctx.step.wait_for_event("kyc", event="kyc", match="data.user", timeout="1h")
        assert got is not None
        ctx.step.run("finish", lambda: None)
        # A later invocation: the account comes from the recorded history.
        ctx.logger.info("replayed: %s", account["iban"])
        ctx.logger.info(
            "kyc: %r; pin %s; card %s", got.data, ctx.event.data["pin"], ctx.event.data["card"]
        )

    settings = {"redact_fields": ("iban", "passport", "card", "pin")}
    with LocalRuntime(app, start=START, settings=settings) as rt:
        [run_id] = rt.send(
            Event(
                name="signup",
                data={
                    "user": "u1",
                    "pin": "7",
                    "card": {"number": 4111111111111111, "cvv": "1234"},
                },
            )
        )
        rt.advance(timedelta(minutes=2))
        rt.send(
            Event(name="kyc", data={"user": "u1", "passport": {"no": "X1234567", "seen": True}})
        )
        assert rt.run(run_id).status == "COMPLETED"

    text = json_log.getvalue()
    for secret in ("DE89370400440532013000", "4111111111111111", "1234", "X1234567"):
        assert secret not in text
    messages = [line["message"] for line in _lines(json_log)]
    assert any(message == "opened {'iban': '***'}" for message in messages)
    assert "replayed: ***" in messages
    [kyc] = [message for message in messages if message.startswith("kyc:")]
    # A value shorter than four characters ("7") is left alone: it would mask every 7.
    assert kyc == (
        "kyc: {'user': 'u1', 'passport': {'no': '***', 'seen': True}}; pin 7; "
        "card {'number': ***, 'cvv': '***'}"
    )


def test_the_console_log_of_dev_and_worker_is_masked_too(capsys):
    from engine.logcontext import redacting, remember
    from infra.local.cli.common import configure_console_logging

    logger = logging.getLogger("stepline")
    before = list(logger.handlers)
    configure_console_logging(verbose=False)
    try:
        with redacting(("card",)):
            remember({"card": CARD})
            try:
                raise ValueError(f"declined {CARD}")
            except ValueError:
                logging.getLogger("stepline.worker").exception("card %s failed", CARD)
    finally:
        for handler in logger.handlers:
            if handler not in before:
                logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    err = capsys.readouterr().err
    assert "card *** failed" in err and "ValueError: declined ***" in err
    assert CARD not in err


def test_the_workflow_logger_writes_each_line_once_even_right_after_a_resume(caplog):
    # GIVEN a workflow that logs right after a sleep, right after a wait and at its end
    app = App("t")

    @app.workflow("chatty", trigger="go")
    def flow(ctx: Context) -> str:
        ctx.logger.info("before anything")
        ctx.step.run("a", lambda: "a")
        ctx.step.sleep("nap", "1h")
        ctx.logger.info("after the nap")
        ctx.step.wait_for_event("ok", event="approved", timeout="1d")
        ctx.logger.info("after the approval")
        ctx.step.run("b", lambda: "b")
        ctx.logger.info("at the end")
        return "done"

    with caplog.at_level("INFO", logger="stepline.workflow"), LocalRuntime(app, start=START) as rt:
        [run_id] = rt.send(Event(name="go"))
        rt.advance(timedelta(hours=2))
        rt.send(Event(name="approved"))
        assert rt.run(run_id).status == "COMPLETED"
    lines = [r.getMessage() for r in caplog.records if r.name == "stepline.workflow"]
    # THEN every line was written exactly once over the run's three invocations
    for text in ("before anything", "after the nap", "after the approval", "at the end"):
        assert lines.count(text) == 1, (text, lines)
