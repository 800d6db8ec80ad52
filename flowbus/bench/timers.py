"""`flowbus bench timers`: how fast pending durable timers fire, and how late.

The pending timers are made by the engine itself: the bench publishes `--timers` triggers
of a workflow whose one step waits a day, and waits until every instance is waiting
(each has its `wait` timer row, written in the transaction that started it). It then
moves the due times into a window that starts `--lead` seconds later, one timer every
1/`--due-rate` seconds (all at once with `--due-rate 0`), with one UPDATE of `due_at`:
the same change the store makes when a timer is postponed; the engine keeps no copy of a
wait's due time in the instance state. A VACUUM ANALYZE of the table follows, as
autovacuum would do, so the pollers see no dead rows the engine would not have left.

Each timer's lateness is the time the instance moved on less its due time: `lateness_*`
from the completion event's `time` (when the timer poller applied the firing) and
`observed_*` from when the bench read that event off Kafka (commit and relay included).
`fires_per_s` is the timers fired over the time from the first due time to the last
firing; `peak_fires_per_s` the most fired within one second.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from flowbus.bench.measure import distribution, per_instance_ms
from flowbus.bench.stack import WORKER, BenchStack
from flowbus.bench.traffic import Outcome, OutcomeReader, publish
from flowbus.bench.workflows import TIMER_STEP, TIMERS, TIMERS_ID, TIMERS_TYPE

_PENDING = "SELECT count(*) FROM timers WHERE kind = 'wait' AND step_id = $1"
_MOVE_DUE = """
WITH ranked AS (
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS n
    FROM timers WHERE kind = 'wait' AND step_id = $1
)
UPDATE timers SET due_at = $2::timestamptz + ranked.n * $3::interval
FROM ranked WHERE timers.id = ranked.id
RETURNING timers.instance_id, timers.due_at
"""


async def _create(stack: BenchStack, count: int) -> None:
    """Start `count` instances and wait until each has its pending timer."""
    started = time.monotonic()
    body = {"type": TIMERS_TYPE}
    await publish(stack.settings, lambda n: {**body, "id": f"t-{n}"}, count)
    conn = await stack.connect()
    try:
        limit = 120 + count / 50
        while (pending := await conn.fetchval(_PENDING, TIMER_STEP)) < count:
            stack.check_workers()
            if time.monotonic() - started > limit:
                stack.show_logs()
                raise click.ClickException(f"{pending} of {count} timers pending after {limit}s")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    seconds = time.monotonic() - started
    click.echo(f"created timers={count} seconds={seconds:.1f} per_s={count / seconds:.0f}")


async def _move_due(stack: BenchStack, lead: float, due_rate: float) -> dict[str, float]:
    """Put the pending timers' due times in the window; return each instance's due time."""
    first = datetime.now(UTC) + timedelta(seconds=lead)
    step = timedelta(seconds=1 / due_rate) if due_rate else timedelta(0)
    began = time.monotonic()
    conn = await stack.connect()
    try:
        rows = await conn.fetch(_MOVE_DUE, TIMER_STEP, first, step)
        await conn.execute("VACUUM ANALYZE timers")
    finally:
        await conn.close()
    if datetime.now(UTC) >= first:
        raise click.ClickException(
            f"moving the due times took {time.monotonic() - began:.1f}s, past the first due "
            f"time: give a larger --lead than {lead:g}"
        )
    return {str(row["instance_id"]): row["due_at"].timestamp() for row in rows}


async def _run(stack: BenchStack, count: int, due_rate: float, lead: float, workers: int) -> None:
    await stack.deploy({"bench-timers": TIMERS})
    await stack.start_workers(workers)
    await stack.wait_for_group(workers)
    await _create(stack, count)
    outcomes: list[Outcome] = []
    async with OutcomeReader(stack.settings, TIMERS_ID, outcomes.append) as reader:
        due = await _move_due(stack, lead, due_rate)
        await asyncio.sleep(max(0.0, min(due.values()) - time.time()))
        cpu = stack.cpu().get(WORKER, 0.0)
        window = (count - 1) / due_rate if due_rate else 0.0
        limit = lead + window + 120 + count / 100
        try:
            await reader.wait_for(count, limit)
        except TimeoutError:
            stack.show_logs()
            raise click.ClickException(
                f"{reader.ended} of {count} timers fired in {limit:.0f}s"
            ) from None
        cpu = stack.cpu().get(WORKER, 0.0) - cpu
    first_due = min(due.values())
    lateness = [o.applied - due[o.instance_id] for o in outcomes]
    observed = [o.received - due[o.instance_id] for o in outcomes]
    last_fire = max(o.applied for o in outcomes)
    span = last_fire - first_due
    per_second = Counter(math.floor(o.applied - first_due) for o in outcomes)
    click.echo(
        f"timers timers={count} workers={workers} due_rate_per_s={due_rate:g} "
        f"window_s={window:.1f} fired={len(outcomes)} failed={reader.failed} "
        f"fires_per_s={count / span if span > 0 else math.inf:.0f} "
        f"peak_fires_per_s={max(per_second.values())} "
        f"{distribution(lateness, 'lateness_')} {distribution(observed, 'observed_')} "
        f"cpu_ms_per_timer={per_instance_ms(0.0, cpu, count):.2f}"
    )


@click.command("timers")
@click.option(
    "--timers",
    "count",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Pending durable timers to make and fire.",
)
@click.option(
    "--due-rate",
    type=click.FloatRange(min=0),
    default=2000.0,
    show_default=True,
    help="Timers falling due per second across the window; 0: all due at the same time.",
)
@click.option(
    "--lead",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds from moving the due times to the first due time.",
)
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
@click.option("--unsafe", is_flag=True, help="PostgreSQL without fsync (faster, not durable).")
def timers_command(count: int, due_rate: float, lead: float, workers: int, unsafe: bool) -> None:
    """Fire rate and lateness of many pending durable timers.

    \b
    Prints (key=value):
      created …  the instances started, each waiting on its timer, and how fast
      timers …   fires_per_s, peak_fires_per_s, lateness p50/p90/p99/max (applied time
                 less due time) and observed_* (read off Kafka less due time), worker
                 CPU per timer
    """
    with (
        tempfile.TemporaryDirectory(prefix="flowbus-bench-") as base,
        BenchStack(Path(base), unsafe=unsafe) as stack,
    ):
        asyncio.run(_run(stack, count, due_rate, lead, workers))
