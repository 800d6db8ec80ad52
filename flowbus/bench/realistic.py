"""`flowbus bench realistic`: a sustained offered load of a workflow shaped like real work.

Each instance calls a scoring service over HTTP (a `webhook` action, run outside the
transaction as a leased job), waits durably (a `wait` step of `--wait` seconds: a timer
in PostgreSQL), then publishes an event (`send_event`). Triggers are sent at `--rate` per
second for `--duration` seconds; every `--report-every` seconds a line shows what
completed in that interval, so a slowdown over a long run (growing tables, a backlog of
timers or jobs) shows as it happens. The scoring service is a local HTTP server the bench
starts in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

import click

from flowbus.bench.measure import distribution, per_instance_ms
from flowbus.bench.rounds import run_round
from flowbus.bench.scoring import ScoringService
from flowbus.bench.stack import WORKER, BenchStack
from flowbus.bench.traffic import LagProbe, Latencies, Outcome, OutcomeReader, Publisher, order
from flowbus.bench.workflows import REALISTIC_ID, REALISTIC_TYPE, realistic


class Tally:
    """Latencies of the whole run and of the current reporting interval."""

    def __init__(self) -> None:
        self.run = Latencies.empty()
        self.interval = Latencies.empty()
        self.interval_failed = 0

    def add(self, outcome: Outcome) -> None:
        self.run.add(outcome)
        self.interval.add(outcome)
        self.interval_failed += not outcome.completed

    def next_interval(self) -> tuple[Latencies, int]:
        done, failed = self.interval, self.interval_failed
        self.interval, self.interval_failed = Latencies.empty(), 0
        return done, failed


async def _report(
    stack: BenchStack,
    reader: OutcomeReader,
    publisher: Publisher,
    tally: Tally,
    every: float,
    started: float,
) -> None:
    """Print an `interval` line every `every` seconds until cancelled."""
    async with LagProbe(stack.settings, stack.dsn) as probe:
        cpu = stack.cpu().get(WORKER, 0.0)
        tick = 1
        while True:
            await asyncio.sleep(max(0.0, started + tick * every - time.time()))
            done, failed = tally.next_interval()
            now_cpu = stack.cpu().get(WORKER, 0.0)
            ended = len(done.total) + failed
            click.echo(
                f"interval t_s={tick * every:g} sent={publisher.sent} ended={reader.ended} "
                f"completed_per_s={len(done.total) / every:.0f} failed={failed} "
                f"in_flight={publisher.sent - reader.ended} lag={await probe.lag()} "
                f"{distribution(done.total)} "
                f"cpu_ms_per_instance={per_instance_ms(cpu, now_cpu, ended):.2f}"
            )
            cpu = now_cpu
            tick += 1


async def _run(
    stack: BenchStack,
    scoring: ScoringService,
    workers: int,
    rate: float,
    duration: float,
    every: float,
    wait: float,
    drain: float,
    warmup: int,
) -> None:
    settings = await stack.deploy({"bench-realistic": realistic(scoring.url, wait)})
    await stack.start_workers(workers)
    await stack.wait_for_group(workers)
    body = order(REALISTIC_TYPE)
    if warmup:
        await run_round(stack, REALISTIC_ID, body, warmup)
    count = int(rate * duration)
    tally = Tally()
    async with OutcomeReader(settings, REALISTIC_ID, tally.add) as reader:
        cpu = stack.cpu().get(WORKER, 0.0)
        started = time.time()
        async with Publisher(settings) as publisher:

            async def sustain() -> float:
                seconds = await publisher.send(body, count, rate)
                with contextlib.suppress(TimeoutError):
                    await reader.wait_for(count, drain)
                return seconds

            sending = asyncio.create_task(sustain())
            reporter = asyncio.create_task(_report(stack, reader, publisher, tally, every, started))
            try:
                # The reporter only ends by failing: then stop at once and say why.
                await asyncio.wait({sending, reporter}, return_when=asyncio.FIRST_COMPLETED)
                if reporter.done():
                    await reporter
                sent_seconds = await sending
            finally:
                for task in (sending, reporter):
                    task.cancel()
                await asyncio.gather(sending, reporter, return_exceptions=True)
        cpu = stack.cpu().get(WORKER, 0.0) - cpu
    run = tally.run
    completed = len(run.total)
    seconds = reader.last_received - started if reader.ended else 0.0
    click.echo(
        f"realistic rate_per_s={rate:g} duration_s={duration:g} wait_s={wait:g} "
        f"workers={workers} sent={count} sent_per_s={count / sent_seconds:.1f} "
        f"completed={completed} failed={reader.failed} unfinished={count - reader.ended} "
        f"completed_per_s={completed / seconds if seconds else 0:.0f} seconds={seconds:.1f} "
        f"{distribution(run.total)} "
        f"{distribution([t - wait for t in run.total], 'overhead_')} "
        f"cpu_ms_per_instance={per_instance_ms(0.0, cpu, reader.ended):.2f}"
    )


@click.command("realistic")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    help="Offered load: triggers per second.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds of sending (e.g. 1800 for half an hour).",
)
@click.option(
    "--report-every",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds between interval lines.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="Seconds of the workflow's durable wait.",
)
@click.option(
    "--drain",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait, after the last trigger, for the instances still running.",
)
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
@click.option("--warmup", default=100, show_default=True, help="Instances run before measuring.")
@click.option("--unsafe", is_flag=True, help="PostgreSQL without fsync (faster, not durable).")
def realistic_command(
    rate: float,
    duration: float,
    report_every: float,
    wait: float,
    drain: float,
    workers: int,
    warmup: int,
    unsafe: bool,
) -> None:
    """Sustained load of webhook → durable wait → send_event instances.

    \b
    Prints (key=value):
      interval …   every --report-every seconds: instances completed in the interval
                   per second, in flight, the source topic's consumer lag, latency
                   percentiles of those completed, worker CPU per instance
      realistic …  totals: sent, completed, failed, unfinished, completed_per_s,
                   trigger-to-completion p50/p90/p99/max, and the same less the wait
                   (overhead_*), worker CPU per instance
    """
    with (
        tempfile.TemporaryDirectory(prefix="flowbus-bench-") as base,
        BenchStack(Path(base), unsafe=unsafe) as stack,
        ScoringService(Path(base) / "scoring.log") as scoring,
    ):
        asyncio.run(
            _run(stack, scoring, workers, rate, duration, report_every, wait, drain, warmup)
        )
