"""`flowbus bench scale`: burst throughput with more worker processes in the consumer group,
and the consumer lag over time while the burst is worked off.

For each worker count the bench starts that many workers, waits until the consumer group
is stable with all of them, warms up, runs the three-step burst of `flowbus bench e2e`,
and stops them. Lag is the source topic's end offsets less the next offsets the workers
stored in PostgreSQL with the state (`consumer_offsets`), summed over its partitions (six:
enough for four workers to each own some).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import click

from flowbus.bench.rounds import run_round
from flowbus.bench.stack import BenchStack
from flowbus.bench.traffic import LagProbe, OutcomeReader, order
from flowbus.bench.workflows import DECLARATIVE, THREE_STEPS


class LagSampler:
    """Prints the lag every `every` seconds during a burst and keeps the largest."""

    def __init__(self, stack: BenchStack, workers: int, every: float) -> None:
        self._stack = stack
        self._workers = workers
        self._every = every
        self.largest = 0

    async def __call__(self, reader: OutcomeReader, started: float) -> None:
        async with LagProbe(self._stack.settings, self._stack.dsn) as probe:
            tick = 1
            while True:
                await asyncio.sleep(max(0.0, started + tick * self._every - time.time()))
                lag = await probe.lag()
                self.largest = max(self.largest, lag)
                click.echo(
                    f"lag workers={self._workers} t_s={time.time() - started:.1f} "
                    f"lag={lag} ended={reader.ended}"
                )
                tick += 1


async def _run(
    stack: BenchStack, counts: list[int], instances: int, every: float, warmup: int
) -> None:
    await stack.deploy({"bench": THREE_STEPS})
    kind, workflow_id = DECLARATIVE
    rates = []
    for workers in counts:
        await stack.start_workers(workers)
        joined = await stack.wait_for_group(workers)
        await run_round(stack, workflow_id, order(kind), warmup)
        sampler = LagSampler(stack, workers, every)
        burst = await run_round(stack, workflow_id, order(kind), instances, during=sampler)
        click.echo(
            f"scale workers={workers} instances={instances} "
            f"completed_per_s={burst.per_second:.0f} seconds={burst.seconds:.2f} "
            f"max_lag={sampler.largest} group_join_s={joined:.1f} {burst.cpu_fields()}"
        )
        rates.append(burst.per_second)
        await asyncio.to_thread(stack.stop_workers)
    click.echo(
        f"scale_summary workers={','.join(map(str, counts))} "
        f"completed_per_s={','.join(f'{r:.0f}' for r in rates)} "
        f"speedup={','.join(f'{r / rates[0]:.2f}' for r in rates)}"
    )


def _worker_counts(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        counts = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter("a comma-separated list of numbers, e.g. 1,2,4") from None
    if not counts or min(counts) < 1:
        raise click.BadParameter("a comma-separated list of numbers, e.g. 1,2,4")
    return counts


@click.command("scale")
@click.option(
    "--workers",
    default="1,2,4",
    show_default=True,
    callback=_worker_counts,
    help="Worker counts to measure, comma-separated.",
)
@click.option(
    "--instances", default=10_000, show_default=True, help="Instances per burst (throughput)."
)
@click.option(
    "--lag-every",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds between lag lines.",
)
@click.option("--warmup", default=200, show_default=True, help="Instances run before each burst.")
@click.option("--unsafe", is_flag=True, help="PostgreSQL without fsync (faster, not durable).")
def scale_command(
    workers: list[int], instances: int, lag_every: float, warmup: int, unsafe: bool
) -> None:
    """Burst throughput with 1, 2, 4… worker processes, and the consumer lag over time.

    \b
    Prints (key=value):
      lag …            every --lag-every seconds of a burst: the source topic's lag
      scale …          per worker count: completed_per_s, max_lag, worker CPU per instance
      scale_summary …  the rates side by side and the speedup over the first count
    """
    with (
        tempfile.TemporaryDirectory(prefix="flowbus-bench-") as base,
        BenchStack(Path(base), unsafe=unsafe) as stack,
    ):
        asyncio.run(_run(stack, workers, instances, lag_every, warmup))
