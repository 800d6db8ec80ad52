"""``flowbus bench match``: events per second through :class:`TriggerIndex`.

For each pattern count N the benchmark builds a synthetic installation and
measures two rates over the same event stream:

``parsed_eps``
    ``index.match(doc)`` on match documents that are already built.
``raw_eps``
    The consumer's whole per-record path: ``orjson.loads`` of the ~1 KB record
    value, building the match document, then ``index.match``.

The synthetic installation and its events are described in
:mod:`flowbus.bench.installation`. Each rate is the best of five timed passes over the
stream after a warm-up.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import click
import orjson

from flowbus.bench.installation import Installation
from flowbus.matching.index import TriggerIndex

__all__ = ["BenchResult", "match_command", "run"]

DEFAULT_PATTERN_COUNTS: Final = (10, 100, 1000, 10000)
DEFAULT_EVENTS: Final = 20_000
DEFAULT_SEED: Final = 7

_PASSES: Final = 5


@dataclass(frozen=True)
class BenchResult:
    """Measured rates for one pattern count."""

    patterns: int
    events: int
    parsed_eps: float
    raw_eps: float
    matching_events: int
    """Events that matched at least one trigger."""
    mean_candidates: float
    """Patterns evaluated per event after candidate selection."""

    def line(self) -> str:
        """The line ``flowbus bench match`` prints."""
        return (
            f"patterns={self.patterns} parsed_eps={self.parsed_eps:.0f} raw_eps={self.raw_eps:.0f}"
        )


def run(
    pattern_counts: Sequence[int] = DEFAULT_PATTERN_COUNTS,
    events: int = DEFAULT_EVENTS,
    seed: int = DEFAULT_SEED,
) -> list[BenchResult]:
    """Benchmark ``TriggerIndex`` once per pattern count; see the module docstring."""
    return [_run_one(count, events, seed) for count in pattern_counts]


@click.command("match")
@click.option(
    "--patterns",
    "pattern_counts",
    type=click.IntRange(min=1),
    multiple=True,
    default=DEFAULT_PATTERN_COUNTS,
    show_default=True,
    help="Number of trigger patterns; repeat for several runs.",
)
@click.option(
    "--events",
    type=click.IntRange(min=1),
    default=DEFAULT_EVENTS,
    show_default=True,
    help="Events per timed pass.",
)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
def match_command(pattern_counts: tuple[int, ...], events: int, seed: int) -> None:
    """Measure trigger matching throughput, from parsed documents and from raw bytes."""
    for count in pattern_counts:
        click.echo(_run_one(count, events, seed).line())


def _run_one(pattern_count: int, events: int, seed: int) -> BenchResult:
    world = Installation(random.Random(f"{seed}:{pattern_count}"), pattern_count)
    index = TriggerIndex(
        (f"wf-{i}", topic, pattern) for i, (topic, pattern) in enumerate(world.patterns())
    )
    records = [world.record(i) for i in range(events)]
    docs = [
        _match_doc(r.topic, r.key, r.headers, r.value, offset) for offset, r in enumerate(records)
    ]

    match = index.match

    def parsed_pass() -> None:
        for doc in docs:
            match(doc)

    def raw_pass() -> None:
        for offset, r in enumerate(records):
            match(_match_doc(r.topic, r.key, r.headers, r.value, offset))

    parsed_seconds = _best_time(parsed_pass)
    raw_seconds = _best_time(raw_pass)
    matching = sum(1 for doc in docs if match(doc))
    candidates = sum(len(index._candidates(doc)) for doc in docs)
    return BenchResult(
        patterns=len(index),
        events=events,
        parsed_eps=events / parsed_seconds,
        raw_eps=events / raw_seconds,
        matching_events=matching,
        mean_candidates=candidates / events,
    )


def _best_time(timed_pass: Callable[[], None]) -> float:
    timed_pass()  # warm-up: caches, allocator, branch predictors
    best = float("inf")
    for _ in range(_PASSES):
        start = time.perf_counter()
        timed_pass()
        best = min(best, time.perf_counter() - start)
    return best


def _match_doc(
    topic: str, key: bytes | None, headers: list[tuple[str, bytes]], value: bytes, offset: int
) -> dict[str, Any]:
    """The match document for one record, as the consumer builds it.

    Structured-mode CloudEvents supply the envelope fields; any other JSON body
    becomes ``data`` with the envelope taken from ``ce_*`` headers (binary mode).
    """
    body = orjson.loads(value)
    header_map = {name: raw.decode() for name, raw in headers}
    if type(body) is dict and "specversion" in body:
        envelope = body
        data = body.get("data")
    else:
        envelope = {name[3:]: text for name, text in header_map.items() if name.startswith("ce_")}
        data = body
    return {
        "id": envelope.get("id") or f"{topic}:{offset}",
        "source": envelope.get("source"),
        "type": envelope.get("type"),
        "subject": envelope.get("subject"),
        "time": envelope.get("time"),
        "topic": topic,
        "key": key.decode() if key is not None else None,
        "headers": header_map,
        "data": data,
    }
