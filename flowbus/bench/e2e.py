"""`flowbus bench e2e`: completed three-step instances per second, and trigger-to-completion
latency at paced loads, on a real broker and PostgreSQL started for the run.

The workflow has a condition, a set_variables and a send_event step. Each trigger event
carries the time it was sent; the bench reads `flowbus.instance.completed` back off Kafka,
so a measured latency includes consumption, the transaction, the outbox relay and the
broker round trip. Each round also reports the CPU time the worker processes used per
completed instance (user + system, from `/proc`, children included).

The code-first case (`--case code-first`, or `both`) runs the same shape as a code-first
workflow (`flowbus.bench.code_first`) in an SDK worker process beside the flowbus worker:
each step is checkpointed through the results topic, so an instance takes a workflow task
and six step results plus the workflow result through flowbus.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import click

from flowbus.bench import code_first
from flowbus.bench.rounds import run_round
from flowbus.bench.stack import BenchStack
from flowbus.bench.traffic import order
from flowbus.bench.workflows import CODE_FIRST, DECLARATIVE, THREE_STEPS

DEFAULT_RATES = (250.0, 50.0)


async def _run(
    stack: BenchStack,
    case: str,
    workers: int,
    sdk_workers: int,
    instances: int,
    rates: tuple[float, ...],
    paced_seconds: float,
    warmup: int,
) -> None:
    # The code-first definition is stored beforehand with the content the SDK worker
    # registers on start (so the same version), for its trigger to be live from the start.
    await stack.deploy({"bench": THREE_STEPS, "bench-code": code_first.three_steps.definition()})
    await stack.start_workers(workers, sdk_workers)
    await stack.wait_for_group(workers)
    if case in ("declarative", "both"):
        await _declarative(stack, workers, instances, rates, paced_seconds, warmup)
    if case in ("code-first", "both"):
        kind, workflow_id = CODE_FIRST
        await run_round(stack, workflow_id, order(kind), warmup)  # the SDK worker joined, warm
        burst = await run_round(stack, workflow_id, order(kind), instances)
        click.echo(
            f"code_first instances={instances} workers={workers} sdk_workers={sdk_workers} "
            f"completed_per_s={burst.per_second:.0f} seconds={burst.seconds:.2f} "
            f"{burst.cpu_fields()}"
        )


async def _declarative(
    stack: BenchStack,
    workers: int,
    instances: int,
    rates: tuple[float, ...],
    paced_seconds: float,
    warmup: int,
) -> None:
    kind, workflow_id = DECLARATIVE
    await run_round(stack, workflow_id, order(kind), warmup)  # workers joined, pools warm
    burst = await run_round(stack, workflow_id, order(kind), instances)
    click.echo(
        f"throughput instances={instances} workers={workers} "
        f"completed_per_s={burst.per_second:.0f} seconds={burst.seconds:.2f} "
        f"{burst.cpu_fields()}"
    )
    for rate in rates:
        count = max(1, int(rate * paced_seconds))
        paced = await run_round(stack, workflow_id, order(kind), count, rate)
        click.echo(
            f"latency rate_per_s={rate:g} instances={count} "
            f"sent_per_s={count / paced.sent_seconds:.1f} {paced.latency_fields()} "
            f"{paced.cpu_fields()}"
        )


@click.command("e2e")
@click.option(
    "--instances", default=5000, show_default=True, help="Instances for the burst (throughput)."
)
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
@click.option(
    "--case",
    type=click.Choice(["declarative", "code-first", "both", "realistic"]),
    default="both",
    show_default=True,
    help="Declarative definitions, code-first workflows in an SDK worker, or both; "
    "realistic: `flowbus bench realistic` with its defaults (webhook, durable wait, "
    "send_event at 600/s for 60 s).",
)
@click.option(
    "--sdk-workers", default=1, show_default=True, help="SDK worker processes (code-first)."
)
@click.option(
    "--rate",
    "rates",
    type=click.FloatRange(min=0, min_open=True),
    multiple=True,
    default=DEFAULT_RATES,
    show_default=True,
    help="Triggers/s of a paced latency round (declarative); repeat for several rounds.",
)
@click.option(
    "--paced-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Length of each paced round.",
)
@click.option(
    "--warmup", default=200, show_default=True, help="Instances run before measuring, per case."
)
@click.option("--unsafe", is_flag=True, help="PostgreSQL without fsync (faster, not durable).")
def e2e_command(
    instances: int,
    workers: int,
    case: str,
    sdk_workers: int,
    rates: tuple[float, ...],
    paced_seconds: float,
    warmup: int,
    unsafe: bool,
) -> None:
    """Completed three-step instances per second in a burst, then latency at paced loads.

    \b
    Prints (key=value):
      throughput …  completed_per_s, cpu_ms_per_instance (worker CPU per instance)
      latency …     per --rate: p50/p90/p99/max of send→completion read, and of its two
                    parts, send→applied (applied_*) and applied→relayed (relayed_*)
      code_first …  completed_per_s of the code-first case, CPU of worker and SDK worker
      interval, realistic …  the realistic case (see `flowbus bench realistic --help`)
    """
    if case == "realistic":
        from flowbus.bench.realistic import realistic_command

        click.get_current_context().invoke(realistic_command, workers=workers, unsafe=unsafe)
        return
    sdk = sdk_workers if case != "declarative" else 0
    with (
        tempfile.TemporaryDirectory(prefix="flowbus-bench-") as base,
        BenchStack(Path(base), unsafe=unsafe) as stack,
    ):
        asyncio.run(_run(stack, case, workers, sdk, instances, rates, paced_seconds, warmup))
