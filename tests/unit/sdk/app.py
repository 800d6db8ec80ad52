"""A user's module as `flowbus sdk-worker` loads it."""

from __future__ import annotations

from typing import Any

from flowbus.sdk import TaskContext, Worker, WorkflowContext, task, workflow


@workflow("greet")
async def greet(ctx: WorkflowContext, input: dict[str, Any]) -> str:
    return str(await ctx.step("hello", lambda: "hello").run())


@task("shout")
async def shout(input: dict[str, Any], ctx: TaskContext) -> str:
    return str(input).upper()


components = [greet, shout]
worker = Worker(broker="kafka:9092", workflows=[greet], group="mine")
nothing = [1, 2]
