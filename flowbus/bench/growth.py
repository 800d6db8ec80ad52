"""`flowbus bench growth`: does throughput hold when the tables hold a long history?

The bench runs the three-step burst of `flowbus bench e2e` on a fresh database, then
adds `--ended` ended instances with their step history, ANALYZEs, and runs the burst
again. The history is made with SQL, cloned from the instances of the first bursts: the
same workflow, state, input, output and step rows the engine wrote, under new ids and
trigger event ids, their times spread over the past `--days`. The outbox and the timers
get nothing, as for instances that ended long ago.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import click

from flowbus.bench.rounds import RoundResult, run_round
from flowbus.bench.stack import BenchStack
from flowbus.bench.traffic import order
from flowbus.bench.workflows import DECLARATIVE, THREE_STEPS

_TEMPLATES = 1000
_CHUNK = 50_000

_TEMPLATE_INSTANCES = """
CREATE TEMP TABLE growth_template AS
SELECT row_number() OVER (ORDER BY id) - 1 AS t, i.*
FROM (SELECT * FROM instances WHERE workflow_id = $1 AND status = 'completed'
      ORDER BY id LIMIT $2) AS i
"""
_TEMPLATE_STEPS = """
CREATE TEMP TABLE growth_template_steps AS
SELECT g.t, s.* FROM step_executions s JOIN growth_template g ON s.instance_id = g.id
"""
# One statement per chunk: the new ids are drawn once (a CTE referenced twice is
# materialised) and used for the instances and their steps.
_CLONE = """
WITH g AS (
    SELECT n, gen_random_uuid() AS id, 'growth-' || n AS event_id,
           now() - $5::interval * (1 - n / $4::float8) AS at
    FROM generate_series($1::bigint, $2::bigint - 1) AS n
), made AS (
    INSERT INTO instances (
        id, workflow_id, workflow_version, status, correlation_id, trigger_event_id,
        state, input, output, error, created_at, updated_at, completed_at)
    SELECT g.id, t.workflow_id, t.workflow_version, t.status, t.correlation_id, g.event_id,
           jsonb_set(jsonb_set(t.state, '{id}', to_jsonb(g.id::text)),
                     '{trigger,id}', to_jsonb(g.event_id)),
           t.input, t.output, t.error, g.at, g.at, g.at
    FROM g JOIN growth_template t ON t.t = g.n % $3
)
INSERT INTO step_executions (
    instance_id, step_id, attempt, step_type, status, input, output, error,
    started_at, finished_at)
SELECT g.id, s.step_id, s.attempt, s.step_type, s.status, s.input, s.output, s.error,
       g.at, g.at
FROM g JOIN growth_template_steps s ON s.t = g.n % $3
"""
_SIZES = """
SELECT pg_total_relation_size('instances') / 1048576 AS instances_mb,
       pg_total_relation_size('step_executions') / 1048576 AS steps_mb
"""


async def _seed(stack: BenchStack, ended: int, days: float) -> None:
    """Add `ended` ended instances and their step rows, then VACUUM ANALYZE."""
    began = time.monotonic()
    conn = await stack.connect()
    try:
        await conn.execute(_TEMPLATE_INSTANCES, THREE_STEPS["id"], _TEMPLATES)
        await conn.execute(_TEMPLATE_STEPS)
        templates = await conn.fetchval("SELECT count(*) FROM growth_template")
        if not templates:
            raise click.ClickException("no completed instance to clone")
        for lo in range(0, ended, _CHUNK):
            hi = min(ended, lo + _CHUNK)
            await conn.execute(_CLONE, lo, hi, templates, ended, timedelta(days=days))
        inserted = time.monotonic() - began
        await conn.execute("VACUUM ANALYZE instances, step_executions")
        await conn.execute("CHECKPOINT")
        sizes = await conn.fetchrow(_SIZES)
        total = await conn.fetchval("SELECT count(*) FROM instances")
    finally:
        await conn.close()
    click.echo(
        f"seeded ended={ended} instances_total={total} insert_s={inserted:.1f} "
        f"rows_per_s={ended / inserted:.0f} analyzed_s={time.monotonic() - began:.1f} "
        f"instances_mb={sizes['instances_mb']} step_executions_mb={sizes['steps_mb']}"
    )


async def _bursts(stack: BenchStack, phase: str, instances: int, rounds: int) -> float:
    """The best of `rounds` bursts, each printed."""
    kind, workflow_id = DECLARATIVE
    best: RoundResult | None = None
    for n in range(1, rounds + 1):
        burst = await run_round(stack, workflow_id, order(kind), instances)
        click.echo(
            f"burst phase={phase} round={n} instances={instances} "
            f"completed_per_s={burst.per_second:.0f} seconds={burst.seconds:.2f} "
            f"{burst.cpu_fields()}"
        )
        if best is None or burst.per_second > best.per_second:
            best = burst
    assert best is not None
    return best.per_second


async def _run(
    stack: BenchStack, ended: int, instances: int, rounds: int, days: float, warmup: int
) -> None:
    await stack.deploy({"bench": THREE_STEPS})
    await stack.start_workers(1)
    await stack.wait_for_group(1)
    kind, workflow_id = DECLARATIVE
    await run_round(stack, workflow_id, order(kind), warmup)
    empty = await _bursts(stack, "empty", instances, rounds)
    await _seed(stack, ended, days)
    await run_round(stack, workflow_id, order(kind), warmup)
    grown = await _bursts(stack, "grown", instances, rounds)
    click.echo(
        f"growth ended={ended} instances={instances} empty_per_s={empty:.0f} "
        f"grown_per_s={grown:.0f} ratio={grown / empty:.3f}"
    )


@click.command("growth")
@click.option(
    "--ended",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Ended instances added between the two measurements.",
)
@click.option(
    "--instances", default=5000, show_default=True, help="Instances per burst (throughput)."
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Bursts before and after; the best of each is compared.",
)
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="The ended instances' times are spread over this many past days.",
)
@click.option("--warmup", default=200, show_default=True, help="Instances run before each phase.")
@click.option("--unsafe", is_flag=True, help="PostgreSQL without fsync (faster, not durable).")
def growth_command(
    ended: int, instances: int, rounds: int, days: float, warmup: int, unsafe: bool
) -> None:
    """Burst throughput on a fresh database, then with `--ended` ended instances in it.

    \b
    Prints (key=value):
      burst …   each burst: phase (empty, grown), completed_per_s, worker CPU per instance
      seeded …  the ended instances added, how fast, and the tables' sizes
      growth …  the best burst of each phase and their ratio (grown / empty)
    """
    with (
        tempfile.TemporaryDirectory(prefix="flowbus-bench-") as base,
        BenchStack(Path(base), unsafe=unsafe) as stack,
    ):
        asyncio.run(_run(stack, ended, instances, rounds, days, warmup))
