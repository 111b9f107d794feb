"""A CloudFormation custom resource's side of the protocol: do the work, always answer.

CloudFormation invokes the function with `{"RequestType": "Create" | "Update" |
"Delete", "ResponseURL", "StackId", "RequestId", "LogicalResourceId", ...}` and waits
(up to an hour) for a PUT of the outcome to `ResponseURL`, a presigned S3 URL. So the
outcome is sent whatever happens: `SUCCESS`, or `FAILED` with the error as the reason,
which makes CloudFormation fail the deploy and roll it back, showing the reason. A
`Delete` that fails is answered `SUCCESS` all the same (with the error in the reason
and the log): a stack must always be deletable, and deleting the schedule group after
it deletes whatever schedules are left.

The physical id is fixed (`PhysicalResourceId` of the request, else one derived from the
logical id), so an Update never looks like a replacement to CloudFormation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("stepline.handlers")

MAX_REASON = 3_000

Respond = Callable[[str, bytes], None]


def put_response(url: str, body: bytes) -> None:
    """PUT the answer to CloudFormation's presigned URL (which wants no content type)."""
    import urllib.request  # only the cron-sync function needs it (it costs a cold start)

    request = urllib.request.Request(
        url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def answer(
    event: Mapping[str, Any],
    *,
    apply: Callable[[], Mapping[str, Any]],
    remove: Callable[[], Mapping[str, Any]],
    respond: Respond = put_response,
) -> dict[str, Any]:
    """Run `apply` (Create, Update) or `remove` (Delete) and send CloudFormation the
    outcome; returns what was sent. `apply` and `remove` return the resource's data."""
    kind = str(event.get("RequestType", ""))
    physical = str(
        event.get("PhysicalResourceId") or f"{event.get('LogicalResourceId', 'resource')}-sync"
    )
    status, reason, data = "SUCCESS", f"{kind} done", {}
    try:
        if kind in ("Create", "Update"):
            data = dict(apply())
        elif kind == "Delete":
            data = dict(remove())
        else:
            status, reason = "FAILED", f"unknown RequestType {kind!r}"
        if data:
            reason = f"{kind}: " + ", ".join(f"{key} {value}" for key, value in data.items())
    except Exception as error:
        log.exception("custom resource %s failed", kind)
        text = f"{type(error).__name__}: {error}"
        if kind == "Delete":
            reason = f"Delete: could not clean up ({text}); the schedule group goes with the stack"
        else:
            status, reason = "FAILED", text
    body = {
        "Status": status,
        "Reason": reason[:MAX_REASON],
        "PhysicalResourceId": physical,
        "StackId": event.get("StackId", ""),
        "RequestId": event.get("RequestId", ""),
        "LogicalResourceId": event.get("LogicalResourceId", ""),
        "Data": {key: str(value) for key, value in data.items()},
    }
    url = str(event.get("ResponseURL", ""))
    if url:
        respond(url, json.dumps(body).encode())
    else:
        log.error("custom resource request without a ResponseURL: %s", body)
    return body
