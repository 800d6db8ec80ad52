"""An external action whose worker dies mid-call runs again, with the same idempotency key."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.integration.conftest import DeploymentFactory
from tests.support.http import HookServer


async def test_a_call_cut_off_by_a_killed_worker_is_retried_with_the_same_key(
    deploy: DeploymentFactory,
) -> None:
    hooks = HookServer()
    await hooks.start()
    try:
        definition: dict[str, Any] = {
            "id": "slow-call",
            "triggers": [{"topic": "orders", "type": "t.slow"}],
            "steps": [
                {
                    "id": "call",
                    "type": "action",
                    "action": "webhook",
                    # The first call hangs past the kill; the rerun gets a quick answer.
                    "config": {"url": f"{hooks.url}/hang?seconds=30", "timeout": 60},
                }
            ],
        }
        d = await deploy("lease", [definition])
        lease = {"FLOWBUS_WORKER__ACTION_LEASE": "2"}
        first = await d.start_worker(extra_env=lease)
        await d.publish(d.topic("orders"), [{"type": "t.slow", "id": "x"}])
        while not hooks.calls_to("hang"):
            await asyncio.sleep(0.05)
        first.kill()

        hooks.hang_seconds = 0.0
        await d.start_worker(extra_env=lease)
        events = await d.read_events(
            [d.settings.topics.instances],
            until=lambda seen: any(e["type"] == "flowbus.instance.completed" for e in seen),
            timeout=60,
        )
        instance_id = events[0]["subject"]
        keys = [c.idempotency_key for c in hooks.calls_to("hang")]
        assert len(keys) >= 2
        assert set(keys) == {f"{instance_id}:call:1"}, "same attempt, same key"
        rows = await d.fetch("SELECT attempt, status FROM step_executions WHERE step_id = 'call'")
        assert [(r["attempt"], r["status"]) for r in rows] == [(1, "completed")]
    finally:
        await hooks.stop()
