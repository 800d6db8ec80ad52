"""The matching benchmark runs and reports in its documented format."""

import re

from click.testing import CliRunner

from flowbus.bench.match import match_command, run


def test_run_measures_each_pattern_count() -> None:
    results = run([10, 50], events=300, seed=3)
    assert [r.patterns for r in results] == [10, 50]
    assert all(r.parsed_eps > 0 and r.raw_eps > 0 for r in results)
    assert all(0 < r.matching_events < r.events for r in results)


def test_command_prints_one_line_per_pattern_count() -> None:
    result = CliRunner().invoke(
        match_command, ["--patterns", "10", "--patterns", "20", "--events", "200"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2
    assert all(re.fullmatch(r"patterns=\d+ parsed_eps=\d+ raw_eps=\d+", line) for line in lines)
    assert lines[0].startswith("patterns=10 ")
