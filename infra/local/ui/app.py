"""The dashboard's pages and actions, as a Flask app (server-rendered Jinja2, no build step).

| path | page |
|---|---|
| `/runs` | runs, newest first, filtered by workflow, status, time range and event data, paged |
| `/runs/<id>` | one run: timeline, steps with outputs, errors and tracebacks, trigger event, what it waits for, parent and children; cancel, pause, resume, replay from a step |
| `/events` | recent events with their data and what each did |
| `/workflows` | triggers, cancel rules, retries, hold, and counts by status; pause and resume |
| `/dead-letters` | each dead-letter queue's messages, and a redrive button |

Pages refresh themselves: static/live.js fetches the page again every two seconds with
`X-Live: 1` and swaps in its `data-live` region (the server renders only that region
for such requests), leaving forms alone.

Safety (the dashboard can cancel runs): every state-changing request is a POST that must
carry this process's random token (`token`, rendered into each form, so a page of
another site cannot know it); a POST whose `Origin` is not this dashboard, or whose
`Sec-Fetch-Site` says cross-site, is refused; every request's `Host` must be one this
dashboard serves under (no DNS rebinding); responses forbid framing and carry a CSP that
allows only this origin's script and styles. Jinja2 escapes every value it renders.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, abort, redirect, render_template, request, url_for
from werkzeug.wrappers.response import Response as BaseResponse

from engine.views import RunView
from infra.local.browse import ALL_STATUSES, RunFilter, parse_when
from infra.local.ui import timeline
from infra.local.ui.backend import Backend

LIVE_HEADER = "X-Live"
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def create_app(backend: Backend, *, token: str | None = None, hosts: Iterable[str] = ()) -> Flask:
    """The dashboard over `backend`. `hosts`: the `host:port` values requests may name
    (empty: any, for tests); `token`: the per-start secret forms carry (random if None)."""
    app = Flask(__name__)
    app.config["STEPLINE_TOKEN"] = token or secrets.token_urlsafe(32)
    allowed = {host.lower() for host in hosts}
    app.jinja_env.globals.update(
        statuses=ALL_STATUSES, fmt_time=_fmt_time, pretty=timeline.pretty, where=backend.where
    )
    app.jinja_env.filters["ago"] = _ago
    app.jinja_env.filters["compact"] = _compact
    app.jinja_env.filters["span"] = lambda delta: timeline.seconds(delta)

    @app.before_request
    def _guard() -> None:
        if allowed and (request.host or "").lower() not in allowed:
            abort(400, "unexpected Host header")
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if (
                origin is not None
                and urlsplit(origin).netloc.lower() != (request.host or "").lower()
            ):
                abort(403, "cross-origin request refused")
            if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
                abort(403, "cross-site request refused")
            given = request.form.get("token", "")
            if not hmac.compare_digest(given.encode(), app.config["STEPLINE_TOKEN"].encode()):
                abort(403, "missing or wrong token: reload the page")

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Not "no-referrer": with it, browsers send "Origin: null" on the page's own forms.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.context_processor
    def _common() -> dict[str, Any]:
        return {"token": app.config["STEPLINE_TOKEN"], "message": request.args.get("msg")}

    def page(template: str, **values: Any) -> str:
        live = request.headers.get(LIVE_HEADER) == "1"
        return render_template(template, live_only=live, now=datetime.now(UTC), **values)

    def back(endpoint: str, message: str, **values: Any) -> BaseResponse:
        return redirect(url_for(endpoint, **values) + "?" + urlencode({"msg": message}), 303)

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status=204)

    @app.get("/")
    def index() -> BaseResponse:
        return redirect(url_for("runs"))

    @app.get("/runs")
    def runs() -> str:
        args = request.args
        statuses = {value.upper() for value in args.getlist("status") if value}
        error = None
        now = datetime.now(UTC)
        try:
            run_filter = RunFilter(
                workflow=args.get("workflow") or None,
                statuses=statuses,
                since=parse_when(args.get("since"), now),
                until=parse_when(args.get("until"), now),
                query=args.get("data") or None,
            )
            limit = max(1, min(int(args.get("limit") or 50), 500))
            result = backend.runs(run_filter, args.get("cursor") or None, limit)
        except ValueError as problem:  # a FilterError, or a --limit that is no number
            error, result, run_filter = str(problem), None, RunFilter()
        views = [RunView.of(run) for run in result.runs] if result else []
        events = result.events if result else {}
        older = None
        if result is not None and result.next_cursor:
            query = [(k, v) for k, v in args.items(multi=True) if k != "cursor"]
            older = url_for("runs") + "?" + urlencode([*query, ("cursor", result.next_cursor)])
        app_ = backend.app
        workflows = sorted(app_.workflows) if app_ is not None else []
        return page(
            "runs.html",
            runs=views,
            events=events,
            filter=run_filter,
            args=args,
            selected=statuses,
            error=error,
            older=older,
            paged=bool(args.get("cursor")),
            workflows=workflows,
        )

    @app.get("/runs/<run_id>")
    def run(run_id: str) -> str:
        loaded = backend.load(run_id)
        if loaded is None:
            abort(404, f"no run {run_id!r} in {backend.where()}")
        now = datetime.now(UTC)
        line = timeline.build(loaded, now)
        waiting = [
            row.view for row in line.rows if row.view.status in ("SLEEPING", "WAITING", "RETRYING")
        ]
        return page(
            "run.html",
            run=RunView.of(loaded.run, loaded.event),
            record=loaded.run,
            event=loaded.event,
            timeline=line,
            waiting=waiting,
            children=backend.children(loaded),
            can_replay=backend.app is not None,
        )

    def action(name: str, act: Callable[[str], Any], done: str, nothing: str) -> None:
        def view(run_id: str) -> BaseResponse:
            try:
                changed = act(run_id)
            except KeyError:
                abort(404, f"no run {run_id!r}")
            return back("run", done if changed else nothing, run_id=run_id)

        app.add_url_rule(f"/runs/<run_id>/{name}", f"run_{name}", view, methods=["POST"])

    action("cancel", backend.cancel, "Cancelled.", "Nothing to cancel: the run had finished.")
    action("pause", backend.pause, "Paused: no new step starts.", "Nothing to pause.")
    action("resume", backend.resume, "Resumed.", "Nothing to resume: the run is not paused.")

    @app.post("/runs/<run_id>/replay")
    def run_replay(run_id: str) -> BaseResponse:
        from_step = request.form.get("from_step") or None
        try:
            new_id = backend.replay(run_id, from_step)
        except KeyError as error:
            return back("run", str(error.args[0]), run_id=run_id)
        except ValueError as error:
            return back("run", str(error), run_id=run_id)
        what = f" from step {from_step}" if from_step else ""
        return back("run", f"Replaying {run_id}{what} as this run.", run_id=new_id)

    @app.get("/events")
    def events() -> str:
        name = request.args.get("name") or None
        return page("events.html", rows=backend.events(name), name=name)

    @app.get("/workflows")
    def workflows() -> str:
        return page("workflows.html", workflows=backend.workflows())

    @app.post("/workflows/<workflow_id>/pause")
    def workflow_pause(workflow_id: str) -> BaseResponse:
        backend.pause_workflow(workflow_id)
        return back("workflows", f"Paused {workflow_id}: its new runs are held.")

    @app.post("/workflows/<workflow_id>/resume")
    def workflow_resume(workflow_id: str) -> BaseResponse:
        resumed = backend.resume_workflow(workflow_id)
        return back("workflows", f"Resumed {workflow_id} and {len(resumed)} held run(s).")

    @app.get("/dead-letters")
    def dead_letters() -> str:
        return page("dead_letters.html", queues=backend.dead_letters())

    @app.post("/dead-letters/<role>/redrive")
    def redrive(role: str) -> BaseResponse:
        try:
            moved = backend.redrive(role)
        except KeyError as error:
            abort(404, str(error.args[0]))
        return back("dead_letters", f"Moved {moved} message(s) back to the {role} queue.")

    return app


def _fmt_time(instant: datetime | None) -> str:
    if instant is None or instant.year <= 1970:
        return ""
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _compact(value: Any) -> str:
    """JSON on one line, as text (Jinja2 escapes it for the page, unlike `tojson`'s
    \u003c escapes, which are for scripts and unreadable for people)."""
    return json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))


def _ago(instant: datetime | None) -> str:
    if instant is None or instant.year <= 1970:
        return ""
    return timeline.seconds(datetime.now(UTC) - instant) + " ago"
