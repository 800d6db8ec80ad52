"""One measured round: publish triggers (in a burst or paced), wait until every instance
has ended, and report the rate, the latencies and the workers' CPU time per instance."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import click

from flowbus.bench.measure import distribution, per_instance_ms
from flowbus.bench.stack import SDK_WORKER, WORKER, BenchStack
from flowbus.bench.traffic import Latencies, OutcomeReader, publish


@dataclass(frozen=True)
class RoundResult:
    instances: int
    seconds: float
    """From the first trigger sent to the last outcome read."""
    sent_seconds: float
    """Time spent publishing (for a paced round: whether the pace was kept)."""
    failed: int
    latencies: Latencies
    cpu_ms: dict[str, float]
    """CPU milliseconds per ended instance, by process kind (worker, sdk-worker)."""

    @property
    def per_second(self) -> float:
        return self.instances / self.seconds if self.seconds > 0 else 0.0

    def cpu_fields(self) -> str:
        """`cpu_ms_per_instance=…` (flowbus workers) and `sdk_cpu_ms_per_instance=…`."""
        names = {WORKER: "cpu_ms_per_instance", SDK_WORKER: "sdk_cpu_ms_per_instance"}
        return " ".join(
            f"{name}={self.cpu_ms[kind]:.2f}" for kind, name in names.items() if kind in self.cpu_ms
        )

    def latency_fields(self) -> str:
        """Percentiles of the whole latency, then of send-to-applied and applied-to-relayed."""
        lat = self.latencies
        return " ".join(
            (
                distribution(lat.total),
                distribution(lat.applied, "applied_"),
                distribution(lat.relayed, "relayed_"),
            )
        )


async def run_round(
    stack: BenchStack,
    workflow_id: str,
    body: Callable[[int], dict[str, Any]],
    count: int,
    rate: float | None = None,
    *,
    during: Callable[[OutcomeReader, float], Coroutine[Any, Any, None]] | None = None,
) -> RoundResult:
    """Publish `count` triggers and wait for their instances to end.

    `during(reader, started)` runs beside the round (e.g. sampling lag) and is cancelled
    when the round ends.
    """
    latencies = Latencies.empty()
    timeout = 120.0 + (count / rate if rate else count / 50)
    async with OutcomeReader(stack.settings, workflow_id, latencies.add) as reader:
        cpu_before = stack.cpu()
        started = time.time()
        beside = asyncio.create_task(during(reader, started)) if during else None
        try:
            sent_seconds = await publish(stack.settings, body, count, rate)
            await reader.wait_for(count, timeout)
        except TimeoutError:
            stack.show_logs()
            raise click.ClickException(
                f"only {reader.ended} of {count} {workflow_id} instances ended in {timeout:.0f}s"
            ) from None
        finally:
            if beside is not None:
                beside.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beside
        cpu_after = stack.cpu()
    return RoundResult(
        instances=count,
        seconds=reader.last_received - started,
        sent_seconds=sent_seconds,
        failed=reader.failed,
        latencies=latencies,
        cpu_ms={
            kind: per_instance_ms(cpu_before.get(kind, 0.0), cpu_after[kind], count)
            for kind in cpu_after
        },
    )
