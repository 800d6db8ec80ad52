"""The worker's Prometheus metrics, counted where consumed batches are applied and exposed
on `worker.metrics_port` (0 turns the exposition off).

Labels: `topic` is the consumed topic; `stream` is `events` (domain topics), `commands`,
`decisions` or `results` (what task workers answer). The outbox counts the rows it parked
and the events it had to truncate. The
deployment-wide gauges (instances by status, outbox and timer lag, consumer lag) are
served by the API's `/metrics`, which reads them from PostgreSQL and Kafka.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from prometheus_client import Counter, Histogram, start_http_server

from flowbus.config import TopicNames
from flowbus.ingest.records import ConsumedRecord
from flowbus.service.reports import BatchReport, WorkReport

log = structlog.get_logger(__name__)

RECORDS_CONSUMED = Counter(
    "flowbus_records_consumed", "Records applied in a committed batch, by topic.", ["topic"]
)
RECORDS_SKIPPED = Counter(
    "flowbus_records_skipped",
    "Redelivered records skipped because they were already applied.",
)
TRIGGER_MATCHES = Counter(
    "flowbus_trigger_matches",
    "Domain events matched to a workflow's trigger with valid input (each starts an "
    "instance, or finds it started when redelivered).",
)
EVENTS_UNMATCHED = Counter(
    "flowbus_events_unmatched", "Domain events that matched no trigger (not an error)."
)
DEAD_LETTERS = Counter(
    "flowbus_dead_letters",
    "Records sent to the dead-letter topic: unreadable records, events that failed their "
    "trigger's transform or input schema, refused commands, and any record that failed on "
    "its own.",
    ["stream"],
)
INSTANCES_STARTED = Counter("flowbus_instances_started", "Instances started.", ["stream"])
INPUTS_APPLIED = Counter(
    "flowbus_inputs_applied",
    "Inputs (commands, decisions, events) applied to instances.",
    ["stream"],
)
BATCH_SECONDS = Histogram(
    "flowbus_batch_seconds", "Time to apply one consumed batch in its transaction.", ["stream"]
)
STEP_SECONDS = Histogram(
    "flowbus_step_duration_seconds",
    "Time from a step attempt's start to its end.",
    ["workflow", "step_type", "status"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 3600, 86400),
)
DECISIONS_REFUSED = Counter(
    "flowbus_decisions_refused", "Approval decisions refused, by reason kind.", ["reason"]
)
RESULTS_STALE = Counter(
    "flowbus_results_stale",
    "Task worker results for a task or attempt that is no longer current, ignored.",
)
TASKS_DISPATCHED = Counter(
    "flowbus_tasks_dispatched", "Task records written for task workers and SDK workers."
)
OUTBOX_PARKED = Counter(
    "flowbus_outbox_parked",
    "Outbox rows the broker refused for good, moved to outbox_parked, by error.",
    ["reason"],
)
OUTBOX_TRUNCATED = Counter(
    "flowbus_outbox_events_truncated",
    "Events over limits.max_event_bytes written with their largest data members replaced "
    "by a truncation marker.",
)


def stream_of(topic: str, topics: TopicNames) -> str:
    if topic == topics.commands:
        return "commands"
    if topic == topics.decisions:
        return "decisions"
    if topic == topics.results:
        return "results"
    return "events"


def observe_batch(
    records: Sequence[ConsumedRecord], result: BatchReport, began: float, topics: TopicNames
) -> None:
    """Count a committed batch from the report its ingest returned; `began` is the
    `time.perf_counter()` at which applying it started."""
    if not records:
        return
    stream = stream_of(records[0].topic, topics)
    BATCH_SECONDS.labels(stream).observe(time.perf_counter() - began)
    for record in records:
        RECORDS_CONSUMED.labels(record.topic).inc()
    RECORDS_SKIPPED.inc(result.skipped)
    EVENTS_UNMATCHED.inc(result.unmatched)
    DEAD_LETTERS.labels(stream).inc(result.dead_lettered)
    work = result.work
    if stream == "events":
        TRIGGER_MATCHES.inc(len(work.started) + work.duplicates)
    INSTANCES_STARTED.labels(stream).inc(len(work.started))
    INPUTS_APPLIED.labels(stream).inc(work.applied)
    for kind in result.refused:
        DECISIONS_REFUSED.labels(kind).inc()
    RESULTS_STALE.inc(result.stale)


def observe_work(work: WorkReport) -> None:
    """What any committed unit of work did: step durations, refusals by the engine."""
    for step in work.finished_steps:
        STEP_SECONDS.labels(step.workflow_id, step.step_type, step.status).observe(step.seconds)
    if work.decisions_refused:
        DECISIONS_REFUSED.labels("rules").inc(work.decisions_refused)
    if work.tasks_dispatched:
        TASKS_DISPATCHED.inc(work.tasks_dispatched)


def observe_dead_letter(record: ConsumedRecord, topics: TopicNames) -> None:
    DEAD_LETTERS.labels(stream_of(record.topic, topics)).inc()


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose the default registry over HTTP on a daemon thread (nothing when port is 0)."""
    if port <= 0:
        return
    start_http_server(port, addr=host)
    log.info("metrics.serving", host=host, port=port)
