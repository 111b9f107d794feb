"""The dashboard's pages and actions over HTTP (Flask's test client), on LocalRuntime's moto.

What a person sees (runs filtered and paged, a run's timeline, traceback and event, what
each event did, workflows, dead letters), what the actions change in DynamoDB, and that
no request from another site, without the page's token or naming another host, changes
anything. The same pages in a real browser: tests/test_dashboard_browser.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from infra.local import LocalRuntime
from infra.local.cli.common import Connection
from infra.local.ui import Backend, UnsafeAddressError, check_address, create_app
from sdk import App, CancelOn, Context, Event, NonRetriableError
from tests.conftest import START

TOKEN = "test-token"
HOST = "127.0.0.1:8288"


def build_app() -> App:
    app = App("shop")

    @app.workflow("quick", trigger="go/quick")
    def quick(ctx: Context) -> str:
        return ctx.step.run("hello", lambda: f"hello {ctx.event.data.get('name')}")

    @app.workflow("nap", trigger="go/nap", cancel_on=[CancelOn("go/stop", match="data.id")])
    def nap(ctx: Context) -> str:
        ctx.step.run("before", lambda: "ready")
        ctx.step.sleep("nap", "1h")
        return "rested"

    def decline() -> None:
        raise NonRetriableError("card declined")

    @app.workflow("checkout", trigger="go/checkout")
    def checkout(ctx: Context) -> str:
        ctx.step.run("reserve", lambda: "reserved")
        ctx.step.run("charge", decline)
        return "shipped"

    @app.workflow("approval", trigger="go/approval")
    def approval(ctx: Context) -> str:
        got = ctx.step.wait_for_event("ok", event="go/approved", match="data.id", timeout="1d")
        return "approved" if got else "timed out"

    return app


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(build_app(), start=START) as runtime:
        yield runtime


def client_for(rt: LocalRuntime, app: App | None = None) -> Any:
    connection = Connection(
        settings=rt.settings, clients=rt.services.clients, queue_urls=rt.queue_urls
    )
    backend = Backend(connection, app_provider=lambda: app or rt.app)
    flask_app = create_app(backend, token=TOKEN, hosts=[HOST])
    return flask_app.test_client()


def get(client: Any, path: str, **headers: str) -> Any:
    return client.get(path, headers={"Host": HOST, **headers})


def post(client: Any, path: str, data: dict[str, str] | None = None, **headers: str) -> Any:
    form = {"token": TOKEN, **(data or {})}
    return client.post(path, data=form, headers={"Host": HOST, **headers})


def text(response: Any) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return str(response.get_data(as_text=True))


def runs_shown(page: str) -> list[str]:
    return re.findall(r'<tr data-run="([^"]+)"', page)


def test_runs_page_lists_runs_in_every_state_newest_first_and_filters_them(rt):
    # GIVEN runs that completed, sleep, failed and wait
    [quick] = rt.send(Event(name="go/quick", data={"name": "ann"}))
    rt.advance(timedelta(seconds=1))
    [nap] = rt.send(Event(name="go/nap", data={"id": 1}))
    rt.advance(timedelta(seconds=1))
    [failed] = rt.send(Event(name="go/checkout", data={"customer": "bob"}))
    rt.advance(timedelta(seconds=1))
    [waiting] = rt.send(Event(name="go/approval", data={"id": 7}))
    client = client_for(rt)
    # WHEN the runs page is opened, THEN it lists them newest first with their statuses
    page = text(get(client, "/runs"))
    assert runs_shown(page) == [waiting, failed, nap, quick]
    for status in ("COMPLETED", "SLEEPING", "FAILED", "WAITING"):
        assert f'class="status s-{status}"' in page
    # AND each filter narrows them
    assert runs_shown(text(get(client, "/runs?status=FAILED"))) == [failed]
    assert runs_shown(text(get(client, "/runs?status=sleeping&status=waiting"))) == [waiting, nap]
    assert runs_shown(text(get(client, "/runs?workflow=quick"))) == [quick]
    assert runs_shown(text(get(client, "/runs?data=customer%3Dbob"))) == [failed]
    assert runs_shown(text(get(client, "/runs?data=id%3D7"))) == [waiting]
    since = (START + timedelta(seconds=1)).isoformat()
    until = (START + timedelta(seconds=2, milliseconds=500)).isoformat()
    ranged = text(get(client, "/runs?" + urlencode({"since": since, "until": until})))
    assert runs_shown(ranged) == [failed, nap]
    # AND a filter it cannot read is said plainly
    assert "neither an ISO 8601 time" in text(get(client, "/runs?since=yesterdayish"))


def test_runs_page_is_paged(rt):
    started = []
    for index in range(5):
        started += rt.send(Event(name="go/quick", data={"name": f"n{index}"}))
        rt.advance(timedelta(seconds=1))
    client = client_for(rt)
    first = text(get(client, "/runs?limit=2"))
    assert runs_shown(first) == started[::-1][:2]
    older = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert older is not None
    second = text(get(client, older.group(1).replace("&amp;", "&")))
    assert runs_shown(second) == started[::-1][2:4]
    third = text(
        get(client, re.search(r'rel="next" href="([^"]+)"', second).group(1).replace("&amp;", "&"))
    )
    assert runs_shown(third) == started[:1]
    assert 'rel="next"' not in third


def test_a_failed_runs_page_shows_its_timeline_traceback_and_event_escaped(rt):
    [failed] = rt.send(Event(name="go/checkout", data={"customer": "<script>alert(1)</script>"}))
    page = text(get(client_for(rt), f"/runs/{failed}"))
    # The timeline has a bar per step attempt, the failed one marked so
    assert len(re.findall(r'class="bar attempt-ok"', page)) == 1
    assert len(re.findall(r'class="bar attempt-failed"', page)) == 1
    # The failed step's error and its traceback
    assert "NonRetriableError: card declined" in page
    assert '<pre class="traceback">' in page and "Traceback (most recent call last)" in page
    # The trigger event, escaped: no markup from run data reaches the page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # And a replay form naming its steps
    assert '<option value="charge">charge</option>' in page


def test_a_sleeping_runs_page_says_what_it_waits_for(rt):
    [nap] = rt.send(Event(name="go/nap", data={"id": 1}))
    [waiting] = rt.send(Event(name="go/approval", data={"id": 7}))
    client = client_for(rt)
    sleeping = text(get(client, f"/runs/{nap}"))
    assert "<h2>Waiting for</h2>" in sleeping and "sleeping until 2026-03-02 10:00:00" in sleeping
    assert 'class="bar sleep"' in sleeping
    waits = text(get(client, f"/runs/{waiting}"))
    assert "event go/approved where data.id matches" in waits
    assert 'class="bar wait"' in waits


def test_a_parent_and_its_child_link_to_each_other_and_a_retried_step_shows_each_attempt():
    app = App("family")
    tries: list[int] = []

    def flaky() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("warehouse busy")
        return "packed"

    @app.workflow("child")
    def child(ctx: Context) -> str:
        return ctx.step.run("pack", flaky)

    @app.workflow("parent", trigger="go/parent")
    def parent(ctx: Context) -> str:
        return str(ctx.step.invoke("packing", workflow="child", data={}, timeout="1h"))

    with LocalRuntime(app, start=START) as rt:
        [parent_id] = rt.send(Event(name="go/parent"))
        [child_run] = rt.runs(workflow="child")
        client = client_for(rt)
        # WHILE the child waits to retry its step, the parent's page says it waits for it
        waiting = text(get(client, f"/runs/{parent_id}"))
        assert "<h2>Waiting for</h2>" in waiting
        assert f'Child run <a href="/runs/{child_run.run_id}">{child_run.run_id}</a>' in waiting
        assert "retry at" in text(get(client, f"/runs/{child_run.run_id}"))
        # WHEN the retry succeeds and both finish
        rt.advance(timedelta(minutes=1))
        assert rt.run(parent_id).output == "packed"
        # THEN the child's page links to its parent and shows a bar per attempt, the
        # failed one marked, with its error
        shown = text(get(client, f"/runs/{child_run.run_id}"))
        assert f'<dt>Parent</dt><dd><a href="/runs/{parent_id}">{parent_id}</a>' in shown
        assert len(re.findall(r'class="bar attempt-failed"', shown)) == 1
        assert len(re.findall(r'class="bar attempt-ok"', shown)) == 1
        assert "attempt 1 failed at" in shown and "RuntimeError: warehouse busy" in shown
        # AND the parent's page shows its child finished
        finished = text(get(client, f"/runs/{parent_id}"))
        assert f'{child_run.run_id}</a> <span class="status s-COMPLETED">' in finished


def test_actions_change_the_run_in_dynamodb(rt):
    [nap] = rt.send(Event(name="go/nap", data={"id": 1}))
    client = client_for(rt)
    store = rt.services.store
    # Pause
    paused = post(client, f"/runs/{nap}/pause")
    assert paused.status_code == 303 and paused.headers["Location"].startswith(f"/runs/{nap}?msg=")
    assert store.get_run(nap).status.value == "PAUSED"
    assert "Resume" in text(get(client, f"/runs/{nap}")) and "since" in text(
        get(client, f"/runs/{nap}")
    )
    # Resume: it sleeps again until its wake time
    post(client, f"/runs/{nap}/resume")
    rt.drain()
    assert store.get_run(nap).status.value == "SLEEPING"
    # Cancel
    post(client, f"/runs/{nap}/cancel")
    assert store.get_run(nap).status.value == "CANCELLED"
    # Replay from a step: a new run, shown with where it came from
    replayed = post(client, f"/runs/{nap}/replay", {"from_step": "nap"})
    new_id = replayed.headers["Location"].split("?")[0].rsplit("/", 1)[1]
    rt.drain()
    assert new_id != nap and store.get_run(new_id).replay_of == nap
    assert "Replay of" in text(get(client, f"/runs/{new_id}"))
    # An unknown step is said, not a crash
    refused = post(client, f"/runs/{nap}/replay", {"from_step": "nope"})
    assert "has+no+step" in refused.headers["Location"]


def test_no_action_without_the_token_from_another_site_or_under_another_host(rt):
    [nap] = rt.send(Event(name="go/nap", data={"id": 1}))
    client = client_for(rt)
    store = rt.services.store
    refusals = [
        client.post(f"/runs/{nap}/cancel", data={}, headers={"Host": HOST}),
        client.post(f"/runs/{nap}/cancel", data={"token": "guess"}, headers={"Host": HOST}),
        post(client, f"/runs/{nap}/cancel", Origin="https://evil.example"),
        post(client, f"/runs/{nap}/cancel", Origin="null"),
        post(client, f"/runs/{nap}/cancel", **{"Sec-Fetch-Site": "cross-site"}),
        client.post(f"/runs/{nap}/cancel", data={"token": TOKEN}, headers={"Host": "evil:80"}),
    ]
    assert [response.status_code for response in refusals] == [403, 403, 403, 403, 403, 400]
    assert store.get_run(nap).status.value == "SLEEPING"
    # The same request from the dashboard's own page goes through
    allowed = post(client, f"/runs/{nap}/cancel", Origin=f"http://{HOST}")
    assert allowed.status_code == 303 and store.get_run(nap).status.value == "CANCELLED"
    # Reading needs no token, but not another Host either (DNS rebinding)
    assert client.get("/runs", headers={"Host": "attacker.example"}).status_code == 400
    page = get(client, "/runs")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"


def test_only_loopback_addresses_are_served_unless_asked_for():
    assert check_address("127.0.0.1", allow_remote=False) is None
    assert check_address("localhost", allow_remote=False) is None
    with pytest.raises(UnsafeAddressError, match="--allow-remote"):
        check_address("0.0.0.0", allow_remote=False)
    warning = check_address("0.0.0.0", allow_remote=True)
    assert warning is not None and "WARNING" in warning


def test_events_page_says_what_each_event_did(rt):
    [nap] = rt.send(Event(name="go/nap", data={"id": 1}, id="ev-nap"))
    rt.advance(timedelta(seconds=1))
    [waiting] = rt.send(Event(name="go/approval", data={"id": 7}, id="ev-approval"))
    rt.advance(timedelta(seconds=1))
    # Routed (a wait uses the name), but it starts nothing and matches no wait.
    rt.send(Event(name="go/approved", data={"x": "<b>bold</b>"}, id="ev-nothing"))
    rt.advance(timedelta(seconds=1))
    rt.send(Event(name="go/approved", data={"id": 7}, id="ev-approved"))
    rt.advance(timedelta(seconds=1))
    rt.send(Event(name="go/stop", data={"id": 1}, id="ev-stop"))
    page = text(get(client_for(rt), "/events"))
    rows = dict(re.findall(r"<code>(ev-[\w-]+)</code>(.*?)</tr>", page, re.S))
    assert set(rows) == {"ev-nap", "ev-approval", "ev-nothing", "ev-approved", "ev-stop"}
    assert f'started <a href="/runs/{nap}">' in rows["ev-nap"]
    assert "started nothing: no workflow in app" in rows["ev-nothing"]
    assert f'resolved the wait of <a href="/runs/{waiting}">' in rows["ev-approved"]
    assert f'cancelled <a href="/runs/{nap}">' in rows["ev-stop"]
    assert "<b>bold</b>" not in page
    # Newest first, filtered by name
    order = re.findall(r"<code>(ev-[\w-]+)</code>", page)
    assert order[0] == "ev-stop" and order[-1] == "ev-nap"
    named = text(get(client_for(rt), "/events?name=go/approved"))
    assert re.findall(r"<code>(ev-[\w-]+)</code>", named) == ["ev-approved", "ev-nothing"]


def test_workflows_page_shows_definitions_counts_and_holds(rt):
    rt.send(Event(name="go/quick", data={}))
    rt.send(Event(name="go/checkout", data={}))
    client = client_for(rt)
    page = text(get(client, "/workflows"))
    assert "<code>go/nap</code>" in page and "match <code>data.id</code>" in page
    checkout = page.split('data-workflow="checkout"')[1].split("</tr>")[0]
    assert "failed 1" in checkout
    # Pausing a workflow holds its new runs until it is resumed
    post(client, "/workflows/quick/pause")
    held_page = text(get(client, "/workflows"))
    assert "Resume workflow" in held_page.split('data-workflow="quick"')[1].split("</tr>")[0]
    rt.advance(timedelta(seconds=2))  # past the engine's hold cache
    [held] = rt.send(Event(name="go/quick", data={"name": "later"}))
    assert rt.run(held).status == "PAUSED"
    post(client, "/workflows/quick/resume")
    rt.drain()
    assert rt.run(held).status == "COMPLETED"


def test_dead_letters_page_shows_messages_and_redrives_them(rt):
    poison = json.dumps({"run_id": "<gone>", "reason": "bogus"})
    rt.clients.sqs.send_message(QueueUrl=rt.dlq_urls["work"], MessageBody=poison)
    client = client_for(rt)
    page = text(get(client, "/dead-letters"))
    work = page.split('data-queue="work"')[1].split("</article>")[0]
    assert "1 message(s)" in work and "&lt;gone&gt;" in work and "Redrive" in work
    moved = post(client, "/dead-letters/work/redrive")
    assert "Moved+1+message" in moved.headers["Location"]
    assert rt.dead_letter_count("work") == 0
    received = rt.clients.sqs.receive_message(QueueUrl=rt.queue_urls["work"])["Messages"]
    assert [message["Body"] for message in received] == [poison]


def test_a_live_refresh_renders_only_the_live_region(rt):
    rt.send(Event(name="go/quick", data={}))
    client = client_for(rt)
    full = text(get(client, "/runs"))
    live = text(get(client, "/runs", **{"X-Live": "1"}))
    assert "<html" in full and "<html" not in live and "<form" not in live
    assert runs_shown(live) == runs_shown(full)


def test_a_dashboard_whose_port_is_taken_serves_on_another(rt):
    """Two `stepline dev`s on one machine: the second's dashboard must not kill it (werkzeug
    reports a port in use with SystemExit) but serve elsewhere and say where."""
    import socket
    import urllib.request

    from infra.local.ui import UiServer

    connection = Connection(
        settings=rt.settings, clients=rt.services.clients, queue_urls=rt.queue_urls
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        server = UiServer(Backend(connection, app_provider=lambda: rt.app), port=busy).start()
        try:
            assert server.moved_from == busy and server.port != busy
            with urllib.request.urlopen(f"{server.url}/runs", timeout=30) as response:
                assert response.status == 200
        finally:
            server.stop()
