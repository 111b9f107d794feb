"""A first workflow: started by an `app/hello` event, it records two steps and returns.

Send it from the command line once the stack is deployed (see README, "Deploy")::

    aws events put-events --entries '[{"Source": "my.app", "DetailType": "app/hello",
        "Detail": "{\\"name\\": \\"Ada\\"}", "EventBusName": "stepline"}]'
"""

from __future__ import annotations

from sdk import Context
from workflows.app import app


def greeting_for(name: str) -> str:
    return f"Hello, {name}!"


@app.workflow("hello", trigger="app/hello")
def hello(ctx: Context) -> dict[str, str]:
    name = str(ctx.event.data.get("name", "world"))
    greeting = ctx.step.run("make-greeting", greeting_for, name)
    # Each step is recorded once; a replay after a crash returns this record.
    shout = ctx.step.run("shout", str.upper, greeting)
    return {"greeting": greeting, "shout": shout}
