"""Webhook idempotency keys on the real stack: one key per step execution, the same on
every retry of it, the attempt number in `Flowbus-Attempt`."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from flowbus.devstack.ports import free_port
from tests.integration.conftest import DeploymentFactory
from tests.support.stack import Deployment


@dataclass
class Keyed:
    """The key and attempt number one request carried."""

    key: str | None
    attempt: str | None


@dataclass
class KeyedHooks:
    """`/fails?times=N` answers 500 to its first N calls; `/again?times=N` answers
    `{"again": true}` to its first N calls, then `{"again": false}`."""

    port: int = 0
    seen: dict[str, list[Keyed]] = field(default_factory=dict)
    _counts: Counter[str] = field(default_factory=Counter)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.seen.setdefault(name, []).append(
            Keyed(request.headers.get("Idempotency-Key"), request.headers.get("Flowbus-Attempt"))
        )
        self._counts[name] += 1
        early = self._counts[name] <= int(request.query.get("times", "0"))
        if name == "fails" and early:
            return web.json_response({"error": "down"}, status=500)
        return web.json_response({"again": name == "again" and early})


@pytest.fixture
async def hooks() -> AsyncIterator[KeyedHooks]:
    recorder = KeyedHooks()
    app = web.Application()
    app.router.add_route("*", "/{name}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    recorder.port = free_port()
    await web.TCPSite(runner, "127.0.0.1", recorder.port).start()
    try:
        yield recorder
    finally:
        await runner.cleanup()


def calling(**step: Any) -> dict[str, Any]:
    """A workflow whose step `call` is a webhook, followed by a step `done`."""
    return {
        "id": "keys",
        "triggers": [{"topic": "orders", "type": "t.call"}],
        "steps": [
            {"id": "call", "type": "action", "action": "webhook", "next": "done", **step},
            {"id": "done", "type": "action", "action": "log", "config": {"message": "done"}},
        ],
    }


async def run_once(deploy: DeploymentFactory, definition: dict[str, Any]) -> str:
    """Run one instance of `definition` to completion; its instance id."""
    d: Deployment = await deploy("webhook-keys", [definition])
    await d.start_worker()
    await d.publish(d.topic("orders"), [{"type": "t.call", "id": "x"}])
    events = await d.read_events(
        [d.settings.topics.instances],
        until=lambda seen: any(e["type"] == "flowbus.instance.completed" for e in seen),
        timeout=60,
    )
    instance_id: str = events[0]["subject"]
    return instance_id


async def test_retries_of_a_failing_call_send_one_key_and_attempts_1_2_3(
    deploy: DeploymentFactory, hooks: KeyedHooks
) -> None:
    definition = calling(
        config={"url": f"{hooks.url}/fails?times=2"},
        retryPolicy={"maxAttempts": 3, "delay": "PT0.1S"},
    )

    instance_id = await run_once(deploy, definition)

    assert hooks.seen["fails"] == [
        Keyed(f"{instance_id}:call", "1"),
        Keyed(f"{instance_id}:call", "2"),
        Keyed(f"{instance_id}:call", "3"),
    ]


async def test_the_attempt_form_sends_a_distinct_key_on_every_retry(
    deploy: DeploymentFactory, hooks: KeyedHooks
) -> None:
    definition = calling(
        config={"url": f"{hooks.url}/fails?times=2", "idempotencyKey": "attempt"},
        retryPolicy={"maxAttempts": 3, "delay": "PT0.1S"},
    )

    instance_id = await run_once(deploy, definition)

    assert hooks.seen["fails"] == [
        Keyed(f"{instance_id}:call:attempt-1", "1"),
        Keyed(f"{instance_id}:call:attempt-2", "2"),
        Keyed(f"{instance_id}:call:attempt-3", "3"),
    ]


async def test_a_loop_back_to_a_step_sends_a_new_key_for_the_new_execution(
    deploy: DeploymentFactory, hooks: KeyedHooks
) -> None:
    definition = calling(
        config={"url": f"{hooks.url}/again?times=1"},
        next=[{"to": "call", "condition": "steps.call.body.again"}, {"to": "done"}],
    )

    instance_id = await run_once(deploy, definition)

    assert hooks.seen["again"] == [
        Keyed(f"{instance_id}:call", "1"),
        Keyed(f"{instance_id}:call:2", "1"),
    ]
