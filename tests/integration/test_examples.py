"""The example workflows shipped in config/workflows/ run as the README says."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from pydantic import SecretStr

from flowbus.approvals.tokens import sign_decision
from flowbus.config import ApprovalSettings
from tests.integration.conftest import example_definition
from tests.support.stack import Deployment, Stack, gap_free

SECRET = "examples-" + "e" * 32
EXAMPLES = ["order-fulfilment.yaml", "stock-reservation.yaml", "invoice-reminder.yaml"]


@pytest_asyncio.fixture(scope="module")
async def shop(stack: Stack) -> AsyncIterator[Deployment]:
    deployment = await stack.deployment(
        "examples", [example_definition(name) for name in EXAMPLES], ("orders", "payments")
    )
    await deployment.start_worker(extra_env={"FLOWBUS_APPROVALS__HS256_SECRET": SECRET})
    try:
        yield deployment
    finally:
        deployment.stop_workers()


async def instance_events(
    d: Deployment, order: str, until: str, step: str | None = None
) -> list[dict[str, Any]]:
    """The order's order-fulfilment instance events, once one of type `until` (for `step`)."""
    topics = [d.settings.topics.instances, d.settings.topics.steps, d.settings.topics.approvals]

    def mine(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
        subject = next(
            (
                e["subject"]
                for e in seen
                if e["type"] == "flowbus.instance.started"
                and e["data"]["workflowId"] == "order-fulfilment"
                and e["data"]["input"].get("orderId") == order
            ),
            None,
        )
        own = {e["id"]: e for e in seen if subject is not None and e.get("subject") == subject}
        return sorted(own.values(), key=lambda e: e["flowbusseq"])

    def reached(seen: list[dict[str, Any]]) -> bool:
        own = mine(seen)
        return gap_free(own) and any(
            e["type"] == until and (step is None or e["data"].get("stepId") == step) for e in own
        )

    seen = await d.read_events(topics, until=reached)
    return mine(seen)


async def notifications(d: Deployment, order: str, count: int) -> list[str]:
    seen = await d.read_events(
        [d.topic("order-notifications")],
        until=lambda s: len([e for e in s if e["data"].get("orderId") == order]) >= count,
    )
    return [e["type"] for e in seen if e["data"].get("orderId") == order]


async def test_a_small_order_waits_for_its_payment_then_ships_and_confirms(
    shop: Deployment,
) -> None:
    order = uuid.uuid4().hex[:8]
    await shop.publish(
        shop.topic("orders"),
        [
            {
                "type": "order.created",
                "order_id": order,
                "amount": 20,
                "customer": "ada",
                "items": ["a"],
            },
        ],
    )
    await instance_events(shop, order, "flowbus.step.started", step="await-payment")
    await shop.publish(
        shop.topic("payments"), [{"type": "payment.received", "order_id": order, "amount": 20}]
    )

    events = await instance_events(shop, order, "flowbus.instance.completed")
    assert events[-1]["data"]["output"] == {"orderId": order, "label": f"LBL-{order}"}
    assert all(e["data"]["metadata"] == {"customer": "ada"} for e in events)
    assert sorted(await notifications(shop, order, 2)) == ["order.confirmed", "order.shipping"]


async def test_a_large_order_needs_finances_approval(shop: Deployment) -> None:
    order = uuid.uuid4().hex[:8]
    await shop.publish(
        shop.topic("orders"), [{"type": "order.created", "order_id": order, "amount": 5000}]
    )
    events = await instance_events(shop, order, "flowbus.approval.requested")
    requested = next(e for e in events if e["type"] == "flowbus.approval.requested")
    assert requested["data"]["assignees"] == ["group:finance"]
    approval_id = requested["data"]["approvalId"]

    keys = ApprovalSettings(hs256_secret=SecretStr(SECRET))
    token = sign_decision(
        keys, approval_id=approval_id, decision="approve", user="grace", groups=["finance"]
    )
    await shop.publish(
        shop.settings.topics.decisions,
        [
            {"approvalId": approval_id, "decision": "approve", "token": token},
        ],
    )
    await instance_events(shop, order, "flowbus.approval.completed")
    await shop.publish(
        shop.topic("payments"), [{"type": "payment.received", "order_id": order, "amount": 5000}]
    )

    events = await instance_events(shop, order, "flowbus.instance.completed")
    steps = [e["data"]["stepId"] for e in events if e["type"] == "flowbus.step.completed"]
    assert steps[:3] == ["check-amount", "finance-approval", "reserve-stock"]
    reserved = next(
        e
        for e in events
        if e["type"] == "flowbus.step.completed" and e["data"]["stepId"] == "reserve-stock"
    )
    assert reserved["data"]["output"] == {"reservation": f"RES-{order}"}
