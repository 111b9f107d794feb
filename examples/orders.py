"""An async workflow: check stock for every line of an order in parallel, then invoke
billing as a child run and wait for its result."""

from __future__ import annotations

import asyncio
from typing import Any

from examples.app import app
from examples.services import mailer
from sdk import AsyncContext, StepError


async def check_stock(sku: str) -> dict[str, Any]:
    await asyncio.sleep(0)  # a real app would await an inventory API here
    return {"sku": sku, "in_stock": not sku.startswith("gone-")}


@app.workflow("order-fulfilment", trigger="shop/order.placed")
async def fulfil(ctx: AsyncContext) -> dict[str, Any]:
    order = ctx.event.data
    stock = await ctx.step.parallel(
        *[
            (lambda sku=sku: ctx.step.run(f"check-stock-{sku}", check_stock, sku))
            for sku in order["skus"]
        ]
    )
    if not all(line["in_stock"] for line in stock):
        await ctx.step.run("notify-backorder", mailer.send, order["customerId"], "backorder")
        return {"status": "backordered"}
    try:
        charge = await ctx.step.invoke(
            "bill",
            workflow="billing",
            data={
                "accountId": order["customerId"],
                "amount": order["amount"],
                "invoiceDate": order["placedAt"],
            },
            timeout="4d",
        )
    except StepError as error:
        return {"status": "payment-failed", "reason": error.error_message}
    await ctx.step.run("ship", mailer.send, order["customerId"], "shipped")
    return {"status": "shipped", "charge": charge["id"] if charge.get("success") else None}
