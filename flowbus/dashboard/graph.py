"""Step graphs for the browser to draw: a definition's Mermaid flowchart (the one the API
serves at `…/mermaid`), and for an instance the same chart with its run on it: each step
filled by the status of its latest attempt, and the edges it took drawn thick.

Mermaid renders the chart in the page (the package is served from this process); this
module only writes the source, as text, which the templates escape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from flowbus.dashboard.rendering import moment
from flowbus.definitions.mermaid import END, START, to_mermaid
from flowbus.definitions.model import WorkflowDefinition

_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)

STYLES = {
    "completed": "fill:#d3f0dc,stroke:#1b6e3a,stroke-width:2px,color:#0b2e17",
    "running": "fill:#d6e6ff,stroke:#1f4fa8,stroke-width:3px,color:#0c2147",
    "waiting": "fill:#fff0c2,stroke:#8a5a00,stroke-width:3px,color:#3d2800",
    "retrying": "fill:#ffe0c7,stroke:#a34a00,stroke-width:3px,color:#401d00",
    "failed": "fill:#ffd6d6,stroke:#a1121b,stroke-width:3px,color:#45050a",
    "skipped": "fill:#eeeeee,stroke:#6b6b6b,stroke-dasharray:4 3,color:#2b2b2b",
    "cancelled": "fill:#e8e8e8,stroke:#555555,stroke-dasharray:4 3,color:#222222",
    "compensated": "fill:#eadcff,stroke:#5a2ea6,stroke-width:2px,color:#24114a",
}
TAKEN = "stroke:#1f4fa8,stroke-width:3px"
_EDGE = re.compile(r'^\s+(\S+) (?:-->|-\.->)(?:\|"[^"]*"\|)? (\S+)$')


@dataclass(frozen=True, slots=True)
class StepRun:
    """What an instance did with one step: its latest status, when it first started and
    when it last finished."""

    status: str
    first_started: datetime
    last_finished: datetime | None


def node_ids(definition: WorkflowDefinition) -> dict[str, str]:
    """The Mermaid node id of every step, as `flowbus.definitions.mermaid` assigns them."""
    taken: set[str] = set()
    nodes: dict[str, str] = {}
    for step_id in definition.step_map():
        base = "s_" + re.sub(r"[^A-Za-z0-9_]", "_", step_id)
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate)
        nodes[step_id] = candidate
    return nodes


def definition_chart(definition: WorkflowDefinition) -> str:
    return to_mermaid(definition)


def instance_chart(
    definition: WorkflowDefinition, runs: Mapping[str, StepRun], completed: bool
) -> str:
    """The definition's chart with the instance's run drawn on it."""
    source = to_mermaid(definition).rstrip("\n")
    if definition.code_first:
        return source + "\n"
    nodes = node_ids(definition)
    by_node = {nodes[step_id]: run for step_id, run in runs.items() if step_id in nodes}
    lines = [source]
    for node, run in by_node.items():
        style = STYLES.get(run.status)
        if style:
            lines.append(f"  style {node} {style}")
    taken = list(_taken_edges(source.split("\n"), by_node, completed))
    if taken:
        lines.append(f"  linkStyle {','.join(str(i) for i in taken)} {TAKEN}")
    return "\n".join(lines) + "\n"


def _taken_edges(
    lines: Iterable[str], runs: Mapping[str, StepRun], completed: bool
) -> Iterable[int]:
    """Indexes of the edges the run took: into each step it entered, the edge from the
    entered predecessor that finished last before it started."""
    edges = [(m.group(1), m.group(2)) for line in lines if (m := _EDGE.match(line))]
    chosen: dict[str, tuple[datetime, int]] = {}
    for index, (source, target) in enumerate(edges):
        if target == END:
            if not completed or source not in runs:
                continue
            entered = _LATEST
        elif target in runs:
            entered = runs[target].first_started
        else:
            continue
        left = runs[source].last_finished if source in runs else None
        if source == START:
            finished = _EARLIEST
        elif left is not None and left <= entered:
            finished = left
        else:
            continue
        best = chosen.get(target)
        if best is None or finished > best[0]:
            chosen[target] = (finished, index)
    return sorted(index for _, index in chosen.values())


def step_runs(history: Iterable[Mapping[str, object]]) -> dict[str, StepRun]:
    """Each step's run from the instance's step attempts (in start order)."""
    runs: dict[str, StepRun] = {}
    for attempt in history:
        step_id = str(attempt.get("stepId"))
        started = moment(attempt.get("startedAt")) or _EARLIEST
        finished = moment(attempt.get("finishedAt"))
        earlier = runs.get(step_id)
        runs[step_id] = StepRun(
            status=str(attempt.get("status")),
            first_started=earlier.first_started if earlier else started,
            last_finished=finished or (earlier.last_finished if earlier else None),
        )
    return runs
