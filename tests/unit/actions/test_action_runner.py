"""How the action runner applies a result it could not apply at once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.service.action_runner import APPLY_BACKOFF_CAP, APPLY_FAILURES, ActionRunner

JOB = SimpleNamespace(
    id=7,
    instance_id="inst-1",
    step_id="call",
    attempt=1,
    payload={"action": "no-such-action", "config": {}, "idempotencyKey": "inst-1:call"},
)


class ScriptedApply(ActionRunner):
    """A runner whose database fails `failures` times with `error`, then applies."""

    def __init__(self, failures: int, error: Exception) -> None:
        super().__init__(cast(AsyncEngine, None), lambda: cast(Any, None), lambda: cast(Any, None))
        self.failures = failures
        self.error = error
        self.tries = 0
        self.held_while_applying: list[bool] = []

    async def _apply(self, batch: list[Any]) -> set[int]:
        self.tries += 1
        self.held_while_applying.extend((r.job.id, r.token) in self._held for r in batch)
        if self.tries <= self.failures:
            raise self.error
        return {r.job.id for r in batch}

    async def run_job(self) -> None:
        self._held.add((JOB.id, "token-1"))
        await self._run_job(JOB, "token-1")


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses between tries, recorded instead of slept."""
    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(asyncio, "sleep", record)
    return slept


async def test_a_result_is_retried_until_an_unreachable_database_answers(
    pauses: list[float],
) -> None:
    runner = ScriptedApply(40, OSError("connection refused"))

    await runner.run_job()

    assert runner.tries == 41
    assert max(pauses) == APPLY_BACKOFF_CAP
    assert sum(pauses) > 60


async def test_a_postgresql_shutdown_counts_as_unreachable(pauses: list[float]) -> None:
    runner = ScriptedApply(APPLY_FAILURES * 2, asyncpg.exceptions.AdminShutdownError("bye"))

    await runner.run_job()

    assert runner.tries == APPLY_FAILURES * 2 + 1


async def test_other_failures_to_apply_are_given_up_after_a_few_tries(
    pauses: list[float],
) -> None:
    runner = ScriptedApply(100, ValueError("engine refused the result"))

    await runner.run_job()

    assert runner.tries == APPLY_FAILURES


async def test_the_lease_is_renewed_until_the_result_is_applied_then_no_more(
    pauses: list[float],
) -> None:
    runner = ScriptedApply(3, OSError("connection refused"))

    await runner.run_job()

    assert runner.held_while_applying == [True] * 4
    assert runner._held == set()
