"""A code-first definition is a document flowbus's own validation accepts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from flowbus.definitions.loader import validate_definition
from flowbus.sdk import WorkflowContext, workflow


class Order(BaseModel):
    amount: int


@workflow(
    "sdk-orders",
    version=2,
    timeout=60,
    deprecated=True,
    triggers=[{"topic": "orders", "type": "order.created"}],
)
async def orders(ctx: WorkflowContext, order: Order) -> None:
    return None


@workflow("plain")
async def plain(ctx: WorkflowContext, input: dict[str, Any]) -> None:
    return None


def test_definitions_validate_as_code_first() -> None:
    stored = validate_definition(orders.definition())
    assert (stored.id, stored.version, stored.kind) == ("sdk-orders", 2, "code")
    assert stored.timeout == timedelta(seconds=60)
    assert stored.code_first
    assert validate_definition(plain.definition()).kind == "code"
