"""The figures the benchmarks compute: percentiles, CPU time of processes, consumer lag.

Pure functions over numbers and `/proc` text, so they are testable without a stack.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PERCENTILES = ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with `fraction` of all at or below it."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def distribution(seconds: Sequence[float], prefix: str = "") -> str:
    """`p50_ms=… p90_ms=… p99_ms=… max_ms=…` of durations given in seconds (`nan` if none)."""
    ordered = sorted(seconds)
    fields = []
    for fraction, name in PERCENTILES:
        value = percentile(ordered, fraction) * 1000 if ordered else math.nan
        fields.append(f"{prefix}{name}_ms={value:.1f}")
    fields.append(f"{prefix}max_ms={ordered[-1] * 1000 if ordered else math.nan:.1f}")
    return " ".join(fields)


@dataclass(frozen=True, slots=True)
class ProcessTimes:
    """CPU time of one process from `/proc/<pid>/stat`, in clock ticks."""

    pid: int
    ppid: int
    own: int
    """utime + stime: the process's threads."""
    reaped: int
    """cutime + cstime: its children that have ended and been waited for."""


def parse_stat(text: str) -> ProcessTimes:
    """Read `/proc/<pid>/stat`; the command name may hold spaces and parentheses."""
    pid = int(text[: text.index(" ")])
    # Fields after the command name, from field 3 (state) on: field n is rest[n - 3].
    rest = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(v) for v in rest[11:15])
    return ProcessTimes(pid=pid, ppid=int(rest[1]), own=utime + stime, reaped=cutime + cstime)


def process_table(proc: Path = PROC) -> dict[int, ProcessTimes]:
    """Every process's CPU times, by pid (processes that end while read are left out)."""
    table = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            times = parse_stat((entry / "stat").read_text())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        table[times.pid] = times
    return table


def tree_ticks(table: Mapping[int, ProcessTimes], roots: Iterable[int]) -> int:
    """Clock ticks used by `roots` and all their descendants, live or reaped."""
    children: dict[int, list[int]] = {}
    for times in table.values():
        children.setdefault(times.ppid, []).append(times.pid)
    pending = [pid for pid in roots if pid in table]
    seen: set[int] = set()
    ticks = 0
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        ticks += table[pid].own + table[pid].reaped
        pending.extend(children.get(pid, ()))
    return ticks


def cpu_seconds(pids: Iterable[int], proc: Path = PROC) -> float:
    """CPU seconds (user + system) used so far by `pids` and their children."""
    return tree_ticks(process_table(proc), pids) / CLOCK_TICKS


def consumer_lag(ends: Mapping[int, int], applied: Mapping[int, int]) -> int:
    """Records written to a topic and not yet applied, summed over its partitions.

    `ends` are the topic's end offsets by partition; `applied` the next offsets stored in
    PostgreSQL with the state (`consumer_offsets`). A partition with no stored offset has
    had nothing applied yet, so all its records count.
    """
    return sum(max(0, end - applied.get(partition, 0)) for partition, end in ends.items())


def per_instance_ms(cpu_before: float, cpu_after: float, instances: int) -> float:
    """CPU milliseconds per instance between two readings of :func:`cpu_seconds`."""
    return (cpu_after - cpu_before) * 1000 / instances if instances else math.nan
