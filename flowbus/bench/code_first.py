"""The code-first workflow `flowbus bench e2e` runs beside the declarative one.

The same shape as the declarative bench workflow: a condition, a set_variables and an
event-shaped result, here three checkpointed steps of small pure functions. Run by the
bench as `flowbus sdk-worker flowbus.bench.code_first:WORKFLOWS`.
"""

from __future__ import annotations

from typing import Any

from flowbus.sdk import WorkflowContext, workflow

TOPIC = "bench-orders"
EVENT_TYPE = "bench.code-order"


def check(amount: float) -> bool:
    """The condition: does the order need a review?"""
    return amount > 100.0


def flag(review: bool) -> dict[str, Any]:
    """The variables the declarative workflow sets."""
    return {"review": review}


def announce(order_id: str) -> dict[str, Any]:
    """The event the declarative workflow sends."""
    return {"topic": "bench-out", "type": "bench.done", "data": {"id": order_id}}


@workflow(
    "bench-code-three-steps",
    version=1,
    triggers=[{"topic": TOPIC, "type": EVENT_TYPE, "transform": {"expression": "data"}}],
)
async def three_steps(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
    review = await ctx.step("check", check, order["amount"]).run()
    await ctx.step("flag", flag, review).run()
    await ctx.step("announce", announce, order["id"]).run()
    return {"sent": order["sent"]}


WORKFLOWS = [three_steps]
