"""The user code the end-to-end tests run in real `flowbus sdk-worker` processes.

Configured by the environment of the process:
- `E2E_DIR`: where every side effect is appended to `effects.log` (one line each, with
  its idempotency key) and where a file `hold-<name>` makes step or task `<name>` wait
  until the test removes it;
- `E2E_SUFFIX`: the test deployment's topic prefix (trigger and event topics);
- `E2E_VARIANT`: `b` reorders the steps of `e2e-diverge` (a non-deterministic change).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from flowbus.sdk import TaskContext, WorkflowContext, task, workflow

DIR = Path(os.environ.get("E2E_DIR", "."))
SUFFIX = os.environ.get("E2E_SUFFIX", "")
VARIANT = os.environ.get("E2E_VARIANT", "a")


def topic(name: str) -> str:
    return f"{SUFFIX}.{name}" if SUFFIX else name


def effect(line: str) -> None:
    with (DIR / "effects.log").open("a") as log:
        log.write(line + "\n")


async def held(name: str) -> None:
    while (DIR / f"hold-{name}").exists():
        await asyncio.sleep(0.05)


def doing(ctx: WorkflowContext, name: str) -> Any:
    """A step function: records its start with its idempotency key, waits while the test
    holds it, records its end."""

    async def run() -> dict[str, Any]:
        key = ctx.idempotency_key()
        effect(f"start {name} {key}")
        await held(name)
        effect(f"done {name} {key}")
        return {"step": name}

    return run


def undoing(ctx: WorkflowContext, name: str) -> Any:
    def undo(result: dict[str, Any]) -> None:
        assert result == {"step": name}
        effect(f"undo {name} {ctx.idempotency_key(name)}")

    return undo


def failing(ctx: WorkflowContext, name: str) -> Any:
    def fail() -> None:
        effect(f"fail {name} {ctx.idempotency_key(name)}")
        raise RuntimeError(f"{name} broke")

    return fail


@workflow("e2e-orders", triggers=[{"topic": topic("orders"), "type": "order.placed"}])
async def orders(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
    reserved = await ctx.step("reserve", doing(ctx, "reserve")).run()
    charged = await ctx.step("charge", doing(ctx, "charge")).run()
    shipped = await ctx.step("ship", doing(ctx, "ship")).run()
    return {"order": order["orderId"], "steps": [reserved, charged, shipped]}


@workflow("e2e-waits", triggers=[{"topic": topic("orders"), "type": "order.waiting"}])
async def waits(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
    await ctx.step("before", doing(ctx, "before")).run()
    await ctx.sleep("PT2S", name="nap")
    paid = await ctx.wait_for_event(
        topic("payments"), match="data.orderId", key=order["orderId"], name="payment"
    )
    await ctx.step("after", doing(ctx, "after")).run()
    return {"order": order["orderId"], "paid": paid["data"]["amount"]}


@workflow("e2e-approve", triggers=[{"topic": topic("orders"), "type": "order.refund"}])
async def refund(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
    await ctx.step("reserve", doing(ctx, "reserve")).run()
    decision = await ctx.approval(
        "manager", assignees=["user:alice"], deadline="PT1H", summary="refund"
    )
    await ctx.step("pay", doing(ctx, "pay")).run()
    return {"approved": decision["approved"], "by": [d["by"] for d in decision["decisions"]]}


@workflow("e2e-saga", triggers=[{"topic": topic("orders"), "type": "order.saga"}])
async def saga(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
    await ctx.step("one", doing(ctx, "one")).compensate(undoing(ctx, "one")).run()
    await ctx.step("two", doing(ctx, "two")).compensate(undoing(ctx, "two")).run()
    extra = await ctx.step("extra", failing(ctx, "extra")).optional().run()
    if order.get("wait"):
        await ctx.wait_for_event(topic("payments"), match="data.orderId", key=order["orderId"])
    if order.get("fail"):
        await ctx.step("three", failing(ctx, "three")).run()
    else:
        await ctx.step("three", doing(ctx, "three")).run()
    return {"extra": extra}


@workflow("e2e-diverge", triggers=[{"topic": topic("orders"), "type": "order.diverge"}])
async def diverge(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
    order_of_steps = ("first", "second") if VARIANT == "a" else ("second", "first")
    for name in order_of_steps:
        await ctx.step(name, doing(ctx, name)).run()
    await ctx.sleep("PT5S", name="pause")
    await ctx.step("third", doing(ctx, "third")).run()
    return {}


@task("charge-card")
async def charge_card(input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    effect(f"start task {ctx.idempotency_key} {ctx.attempt}")
    await held("task")
    effect(f"done task {ctx.idempotency_key} {ctx.attempt}")
    return {"charged": input["amount"], "key": ctx.idempotency_key}


components = [orders, waits, refund, saga, diverge, charge_card]
