"""Evolving a workflow while runs are in flight: `ctx.patched`, `ctx.deprecate_patch`, the
replay check, and runs of a workflow that is gone.

Each test records runs with one version of a workflow on LocalRuntime, deploys the next
version (`rt.deploy`, as a deploy of new code) and lets the runs carry on under it. The
apps are module attributes so that `stepline check --app tests.test_versioning:...` can
load them (tests/test_check_cli.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from engine.replay_check import check_run
from infra.local import LocalRuntime
from sdk import AsyncContext, Context, Event, NonDeterminismError
from tests.conftest import START

SENT: list[tuple[str, str]] = []


def email(user: str, what: str) -> str:
    SENT.append(("email", what))
    return f"email {what} to {user}"


def sms(user: str, what: str) -> str:
    SENT.append(("sms", what))
    return f"sms {what} to {user}"


def signup_app(body: Callable[[Context, str], Any]) -> Any:
    from sdk import App

    app = App("evolving")

    @app.workflow("welcome", trigger="user/signup")
    def welcome(ctx: Context) -> Any:
        return body(ctx, ctx.event.data["user"])

    return app


def v1(ctx: Context, user: str) -> dict[str, Any]:
    hello = ctx.step.run("welcome", email, user, "welcome")
    ctx.step.sleep("wait", "1d")
    tips = ctx.step.run("tips", email, user, "tips")
    return {"sent": [hello, tips]}


def v2_unsafe(ctx: Context, user: str) -> dict[str, Any]:
    # The welcome now goes by SMS: a run recorded by v1 has an email step there.
    hello = ctx.step.run("welcome-sms", sms, user, "welcome")
    ctx.step.sleep("wait", "1d")
    tips = ctx.step.run("tips", email, user, "tips")
    return {"sent": [hello, tips]}


def v2(ctx: Context, user: str) -> dict[str, Any]:
    if ctx.patched("sms-welcome"):
        hello = ctx.step.run("welcome-sms", sms, user, "welcome")
    else:
        hello = ctx.step.run("welcome", email, user, "welcome")
    ctx.step.sleep("wait", "1d")
    tips = ctx.step.run("tips", email, user, "tips")
    return {"sent": [hello, tips]}


def v3(ctx: Context, user: str) -> dict[str, Any]:
    # Every run recorded by v1 has finished: the old branch is gone.
    ctx.deprecate_patch("sms-welcome")
    hello = ctx.step.run("welcome-sms", sms, user, "welcome")
    ctx.step.sleep("wait", "1d")
    tips = ctx.step.run("tips", email, user, "tips")
    return {"sent": [hello, tips]}


def v4(ctx: Context, user: str) -> dict[str, Any]:
    # deprecate_patch removed too: only right once no run recorded the marker.
    hello = ctx.step.run("welcome-sms", sms, user, "welcome")
    ctx.step.sleep("wait", "1d")
    tips = ctx.step.run("tips", email, user, "tips")
    return {"sent": [hello, tips]}


V1, V2_UNSAFE, V2, V3, V4 = (signup_app(body) for body in (v1, v2_unsafe, v2, v3, v4))


def trail(rt: LocalRuntime, run_id: str) -> list[tuple[str, str]]:
    return [(step.id, step.kind) for step in rt.history(run_id)]


def signup(rt: LocalRuntime, user: str) -> str:
    [run_id] = rt.send(Event(name="user/signup", data={"user": user}))
    return run_id


@pytest.fixture(autouse=True)
def _forget_sent() -> None:
    SENT.clear()


def test_a_change_without_a_patch_fails_the_runs_in_flight_and_the_check_says_where():
    with LocalRuntime(V1, start=START) as rt:
        # GIVEN a run recorded by v1, asleep after its welcome email
        old = signup(rt, "ada")
        assert rt.run(old).status == "SLEEPING"
        loaded = rt.services.store.load(old)
        assert loaded is not None

        # THEN the check, before the deploy, says the v2 change would break it, and where
        verdict = check_run(V2_UNSAFE, loaded, now=rt.now())
        assert (verdict.kind, verdict.position) == ("diverges", "00000")
        assert "recorded step 'welcome' (run)" in verdict.message
        assert "asks for step 'welcome-sms' (run)" in verdict.message
        assert check_run(V1, loaded, now=rt.now()).ok

        # WHEN it is deployed anyway
        rt.deploy(V2_UNSAFE)
        rt.advance(timedelta(days=2))

        # THEN the run fails with NonDeterminismError, which points at ctx.patched
        run = rt.run(old)
        assert run.status == "FAILED" and run.error.type == NonDeterminismError.__name__
        assert "ctx.patched" in run.error.message and "stepline check" in run.error.message


def test_a_patch_keeps_old_runs_on_the_old_path_and_sends_new_runs_down_the_new_one():
    with LocalRuntime(V1, start=START) as rt:
        # GIVEN a run recorded by v1, asleep after its welcome email
        old = signup(rt, "ada")
        assert check_run(V2, rt.services.store.load(old), now=rt.now()).ok

        # WHEN v2, with the change behind ctx.patched, is deployed and a user signs up
        rt.deploy(V2)
        new = signup(rt, "grace")
        rt.advance(timedelta(days=2))

        # THEN the old run replays its email path; the new one records the patch and
        # takes the SMS path, now and on every replay after its sleep
        assert rt.run(old).output == {"sent": ["email welcome to ada", "email tips to ada"]}
        assert trail(rt, old) == [("welcome", "run"), ("wait", "sleep"), ("tips", "run")]
        assert rt.run(new).output == {"sent": ["sms welcome to grace", "email tips to grace"]}
        assert trail(rt, new) == [
            ("sms-welcome", "patched"),
            ("welcome-sms", "run"),
            ("wait", "sleep"),
            ("tips", "run"),
        ]
        assert sorted(SENT) == sorted(
            [("email", "welcome"), ("sms", "welcome"), ("email", "tips"), ("email", "tips")]
        )


def test_once_old_runs_are_done_deprecate_patch_replaces_the_patch_and_then_goes():
    with LocalRuntime(V2, start=START) as rt:
        # GIVEN a run that took the patched path under v2 and sleeps
        patched = signup(rt, "ada")
        for version in (V3, V1):
            assert check_run(version, rt.services.store.load(patched), now=rt.now()).ok is (
                version is V3
            )

        # WHEN v3 drops the old branch and keeps deprecate_patch where patched was
        rt.deploy(V3)
        fresh = signup(rt, "grace")
        rt.advance(timedelta(days=2))

        # THEN the patched run replays past its marker, and a new run records none
        assert rt.run(patched).status == rt.run(fresh).status == "COMPLETED"
        assert trail(rt, patched)[0] == ("sms-welcome", "patched")
        assert trail(rt, fresh) == [("welcome-sms", "run"), ("wait", "sleep"), ("tips", "run")]

        # AND removing deprecate_patch is safe for runs without a marker only
        loaded = {run: rt.services.store.load(run) for run in (patched, fresh)}
        assert check_run(V4, loaded[fresh], now=rt.now()).ok
        verdict = check_run(V4, loaded[patched], now=rt.now())
        assert verdict.kind == "diverges"
        assert "recorded step 'sms-welcome' (patched)" in verdict.message


def test_patched_decides_once_per_change_and_works_in_async_workflows():
    from sdk import App

    app = App("async-patch")

    @app.workflow("twice", trigger="go")
    async def twice(ctx: AsyncContext) -> list[Any]:
        first = ctx.patched("change")
        await ctx.step.sleep("nap", "1h")
        again = ctx.patched("change")
        done = await ctx.step.run("done", lambda: "done")
        return [first, again, done]

    with LocalRuntime(app, start=START) as rt:
        [run] = rt.send(Event(name="go"))
        rt.advance(timedelta(hours=2))
        assert rt.run(run).output == [True, True, "done"]
        assert trail(rt, run) == [("change", "patched"), ("nap", "sleep"), ("done", "run")]


def test_a_run_of_a_workflow_the_new_code_lacks_fails_naming_it_and_the_check_lists_it():
    from sdk import App

    renamed = App("evolving")

    @renamed.workflow("welcome-v2", trigger="user/signup")
    def welcome(ctx: Context) -> None: ...

    with LocalRuntime(V1, start=START) as rt:
        old = signup(rt, "ada")
        verdict = check_run(renamed, rt.services.store.load(old), now=rt.now())
        assert verdict.kind == "unknown-workflow" and "'welcome'" in verdict.message

        rt.deploy(renamed)
        rt.advance(timedelta(days=2))

        run = rt.run(old)
        assert run.status == "FAILED" and run.error.type == "UnknownWorkflowError"
        assert "workflow 'welcome'" in run.error.message
        assert "app 'evolving' does not define" in run.error.message


def test_the_check_tells_code_that_ends_early_or_raises_on_old_histories():
    def early(ctx: Context, user: str) -> str:
        ctx.step.run("welcome", email, user, "welcome")
        return "done"

    def strict(ctx: Context, user: str) -> str:
        return ctx.event.data["plan"]  # v1's events have no plan

    with LocalRuntime(V1, start=START) as rt:
        run_id = signup(rt, "ada")
        rt.advance(timedelta(days=2))
        loaded = rt.services.store.load(run_id)
        assert loaded is not None and loaded.run.status == "COMPLETED"

        assert check_run(V1, loaded, now=rt.now()).message == (
            "completes again with the recorded output"
        )
        ended = check_run(signup_app(early), loaded, now=rt.now())
        assert ended.kind == "diverges" and "before reaching step 'wait' (sleep)" in ended.message
        raised = check_run(signup_app(strict), loaded, now=rt.now())
        assert raised.kind == "fails" and "KeyError" in raised.message
