"""An external action whose worker dies mid-call runs again soon, with the same idempotency
key: the lease is short and renewed while the call runs, so it follows the work."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from flowbus.config import WorkerSettings
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
        first = await d.start_worker()
        await d.publish(d.topic("orders"), [{"type": "t.slow", "id": "x"}])
        while not hooks.calls_to("hang"):
            await asyncio.sleep(0.05)
        # The second worker is up before the first dies: what is measured is the takeover.
        await d.start_worker()
        hooks.hang_seconds = 0.0
        first.kill()
        killed = time.monotonic()
        while len(hooks.calls_to("hang")) < 2:
            assert time.monotonic() - killed < 60, "the job was not run again"
            await asyncio.sleep(0.05)
        takeover = time.monotonic() - killed
        print(f"job of a SIGKILLed worker ran again after {takeover:.2f}s")
        lease = WorkerSettings().action_lease
        assert takeover <= lease + 2, f"rerun {takeover:.1f}s after the kill, lease {lease}s"

        events = await d.read_events(
            [d.settings.topics.instances],
            until=lambda seen: any(e["type"] == "flowbus.instance.completed" for e in seen),
            timeout=60,
        )
        instance_id = events[0]["subject"]
        keys = [c.idempotency_key for c in hooks.calls_to("hang")]
        assert len(keys) >= 2
        assert set(keys) == {f"{instance_id}:call"}, "same step execution, same key"
        rows = await d.fetch("SELECT attempt, status FROM step_executions WHERE step_id = 'call'")
        assert [(r["attempt"], r["status"]) for r in rows] == [(1, "completed")]
    finally:
        await hooks.stop()


async def test_the_late_result_of_a_worker_presumed_dead_changes_nothing(
    deploy: DeploymentFactory,
) -> None:
    hooks = HookServer()
    await hooks.start()
    try:
        definition: dict[str, Any] = {
            "id": "paused-call",
            "triggers": [{"topic": "orders", "type": "t.slow"}],
            "steps": [
                {
                    "id": "call",
                    "type": "action",
                    "action": "webhook",
                    # The first call answers while its worker is stopped, before it resumes.
                    "config": {"url": f"{hooks.url}/hang?seconds=20", "timeout": 120},
                }
            ],
        }
        d = await deploy("fence", [definition])
        frozen = await d.start_worker()
        await d.publish(d.topic("orders"), [{"type": "t.slow", "id": "x"}])
        while not hooks.calls_to("hang"):
            await asyncio.sleep(0.05)
        first_call = time.monotonic()
        await d.start_worker()
        # The rerun is still in flight when the frozen worker wakes with its own answer, and
        # outlasts the lease: renewed, it is not run a third time by the woken worker.
        hooks.hang_seconds = 25.0
        os.kill(frozen.process.pid, signal.SIGSTOP)
        try:
            while len(hooks.calls_to("hang")) < 2:
                assert time.monotonic() - first_call < 60, "the job was not taken over"
                await asyncio.sleep(0.05)
            await asyncio.sleep(max(0.0, first_call + 21 - time.monotonic()))
        finally:
            os.kill(frozen.process.pid, signal.SIGCONT)

        await d.wait_for_log(frozen, "action.result_dropped", timeout=30)
        events = await d.read_events(
            [d.settings.topics.instances],
            until=lambda seen: any(e["type"] == "flowbus.instance.completed" for e in seen),
            timeout=60,
        )
        completed = [e for e in events if e["type"] == "flowbus.instance.completed"]
        assert len(completed) == 1
        rows = await d.fetch("SELECT attempt, status FROM step_executions WHERE step_id = 'call'")
        assert [(r["attempt"], r["status"]) for r in rows] == [(1, "completed")]
        assert len(hooks.calls_to("hang")) == 2
    finally:
        await hooks.stop()
