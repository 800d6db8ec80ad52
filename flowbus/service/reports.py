"""What a unit of work and a consumed batch did: typed, for metrics, logs and waking the
worker's loops after the commit."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FinishedStep:
    """A step attempt that ended, and how long it took."""

    workflow_id: str
    step_type: str
    status: str
    seconds: float


@dataclass(slots=True)
class WorkReport:
    """What a unit of work did; the caller wakes the relay, timers and action runner."""

    started: list[str] = field(default_factory=list)
    duplicates: int = 0
    applied: int = 0
    unknown: list[str] = field(default_factory=list)
    actions_queued: int = 0
    tasks_dispatched: int = 0
    """Task records for task workers, written to the outbox."""
    timers_set: int = 0
    inbox_sent: int = 0
    finished_steps: list[FinishedStep] = field(default_factory=list)
    decisions_refused: int = 0
    """Decisions the engine refused (not an assignee, too late, already decided)."""


@dataclass(slots=True)
class BatchReport:
    """What one consumed batch did."""

    consumed: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    unmatched: int = 0
    buffered: int = 0
    refused: list[str] = field(default_factory=list)
    """Decisions refused before reaching the engine, by reason kind."""
    stale: int = 0
    """Results for a task or attempt that is no longer current: ignored."""
    work: WorkReport = field(default_factory=WorkReport)

    @property
    def started(self) -> int:
        return len(self.work.started)
