"""The benchmarks' figures: percentiles, CPU time read from /proc, consumer lag."""

from __future__ import annotations

import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowbus.bench.measure import (
    ProcessTimes,
    consumer_lag,
    cpu_seconds,
    distribution,
    parse_stat,
    per_instance_ms,
    percentile,
    process_table,
    tree_ticks,
)
from flowbus.bench.traffic import Latencies, Outcome, OutcomeReader
from flowbus.cli.main import cli
from flowbus.config import Settings


def stat_line(pid: int, comm: str, ppid: int, times: tuple[int, int, int, int]) -> str:
    """A /proc/<pid>/stat line: utime stime cutime cstime are fields 14-17."""
    fields = ["S", str(ppid), *["0"] * 9, *map(str, times), *["0"] * 30]
    return f"{pid} ({comm}) " + " ".join(fields) + "\n"


@pytest.mark.parametrize(
    ("fraction", "expected"), [(0.5, 50.0), (0.9, 90.0), (0.99, 99.0), (1.0, 100.0)]
)
def test_percentile_is_the_nearest_rank(fraction: float, expected: float) -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, fraction) == expected


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 0.5) == percentile([7.0], 0.99) == 7.0


def test_distribution_prints_milliseconds_with_a_prefix() -> None:
    assert distribution([0.001, 0.002, 0.003, 0.004], "applied_") == (
        "applied_p50_ms=2.0 applied_p90_ms=4.0 applied_p99_ms=4.0 applied_max_ms=4.0"
    )


def test_distribution_of_nothing_says_nan() -> None:
    assert distribution([]) == "p50_ms=nan p90_ms=nan p99_ms=nan max_ms=nan"


def test_stat_line_with_spaces_and_parentheses_in_the_name_is_read() -> None:
    times = parse_stat(stat_line(42, "python -m (flowbus) worker", 7, (120, 30, 5, 1)))
    assert times == ProcessTimes(pid=42, ppid=7, own=150, reaped=6)


def test_tree_counts_descendants_and_reaped_children_but_not_others() -> None:
    table = {
        p.pid: p
        for p in [
            ProcessTimes(pid=10, ppid=1, own=100, reaped=5),
            ProcessTimes(pid=11, ppid=10, own=20, reaped=0),
            ProcessTimes(pid=12, ppid=11, own=3, reaped=0),
            ProcessTimes(pid=20, ppid=1, own=999, reaped=0),
        ]
    }
    assert tree_ticks(table, [10]) == 128
    assert tree_ticks(table, [10, 11]) == 128  # a pid inside the tree counts once
    assert tree_ticks(table, [99]) == 0  # ended: nothing


def test_process_table_reads_a_proc_directory(tmp_path: Path) -> None:
    for pid, ppid in [(1, 0), (5, 1)]:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(stat_line(pid, "x", ppid, (pid, 1, 0, 0)))
    (tmp_path / "self").mkdir()
    (tmp_path / "9").mkdir()  # ended while the table was read: no stat file
    assert sorted(process_table(tmp_path)) == [1, 5]


def test_cpu_seconds_of_this_process_grows_with_work() -> None:
    before = cpu_seconds([os.getpid()])
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert cpu_seconds([os.getpid()]) > before


def test_lag_is_end_offsets_less_applied_offsets_over_partitions() -> None:
    assert consumer_lag({0: 100, 1: 50, 2: 10}, {0: 90, 1: 50}) == 10 + 0 + 10


def test_lag_is_never_negative_for_a_partition() -> None:
    assert consumer_lag({0: 5}, {0: 8}) == 0


def test_cpu_per_instance_is_in_milliseconds() -> None:
    assert per_instance_ms(1.0, 3.0, 1000) == 2.0
    assert math.isnan(per_instance_ms(1.0, 3.0, 0))


@pytest.mark.parametrize("name", ["e2e", "growth", "match", "realistic", "scale", "timers"])
def test_every_benchmark_has_help(name: str) -> None:
    result = CliRunner().invoke(cli, ["bench", name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def outcome_event(kind: str, subject: str, workflow_id: str = "wf") -> dict[str, object]:
    return {
        "type": f"flowbus.instance.{kind}",
        "subject": subject,
        "time": "2026-12-01T10:00:00.250Z",
        "data": {"workflowId": workflow_id, "output": {"sent": 1.0}},
    }


def test_outcomes_are_read_once_each_and_only_for_the_workflow() -> None:
    seen: list[Outcome] = []
    reader = OutcomeReader(Settings(), "wf", seen.append)
    for event in [
        outcome_event("started", "a"),
        outcome_event("completed", "a"),
        outcome_event("completed", "a"),  # relayed twice
        outcome_event("completed", "b", workflow_id="other"),
        outcome_event("failed", "c"),
    ]:
        reader._take(event, now=5.0)
    assert [(o.instance_id, o.completed) for o in seen] == [("a", True), ("c", False)]
    assert (reader.ended, reader.failed, reader.last_received) == (2, 1, 5.0)
    assert seen[0].applied == datetime(2026, 12, 1, 10, 0, 0, 250000, UTC).timestamp()


def test_latencies_split_on_the_applied_time_and_skip_failures() -> None:
    latencies = Latencies.empty()
    latencies.add(Outcome("a", True, received=10.5, applied=10.2, output={"sent": 10.0}))
    latencies.add(Outcome("b", False, received=11.0, applied=10.9, output=None))
    assert latencies.total == [0.5]
    assert latencies.applied == pytest.approx([0.2])
    assert latencies.relayed == pytest.approx([0.3])


def test_scale_refuses_a_worker_count_below_one() -> None:
    result = CliRunner().invoke(cli, ["bench", "scale", "--workers", "1,0"])
    assert result.exit_code == 2
    assert "comma-separated list" in result.output
