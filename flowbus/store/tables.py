"""The PostgreSQL schema (SQLAlchemy Core). Changes go through migrations under `migrations/`."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

workflow_definitions = Table(
    "workflow_definitions",
    metadata,
    Column("workflow_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", Text),
    Column("description", Text),
    Column("deprecated", Boolean, nullable=False, server_default=text("false")),
    Column("document", JSONB, nullable=False),
    Column("checksum", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("workflow_id", "version"),
)

instances = Table(
    "instances",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("workflow_id", Text, nullable=False),
    Column("workflow_version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("correlation_id", Text),
    Column("parent_instance_id", UUID(as_uuid=False)),
    Column("parent_step_id", Text),
    Column("trigger_event_id", Text),
    Column("state", JSONB, nullable=False),
    Column("input", JSONB),
    Column("output", JSONB),
    Column("error", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Index("ix_instances_workflow_status", "workflow_id", "status", "created_at", "id"),
    Index("ix_instances_status_created", "status", "created_at", "id"),
    Index(
        "ix_instances_correlation",
        "correlation_id",
        postgresql_where=text("correlation_id IS NOT NULL"),
    ),
    Index(
        "ix_instances_parent",
        "parent_instance_id",
        postgresql_where=text("parent_instance_id IS NOT NULL"),
    ),
    Index("ix_instances_created", "created_at", "id"),
    Index(
        "ix_instances_completed",
        "completed_at",
        postgresql_include=["status", "created_at"],
        postgresql_where=text("completed_at IS NOT NULL"),
    ),
)

step_executions = Table(
    "step_executions",
    metadata,
    Column("instance_id", UUID(as_uuid=False), nullable=False),
    Column("step_id", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("step_type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("input", JSONB),
    Column("output", JSONB),
    Column("error", JSONB),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("instance_id", "step_id", "attempt"),
)

timers = Table(
    "timers",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("instance_id", UUID(as_uuid=False)),
    Column("kind", Text, nullable=False),
    Column("step_id", Text),
    Column("attempt", Integer),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("locked_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_timers_due", "due_at"),
    Index("ix_timers_instance_step", "instance_id", "step_id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("key", LargeBinary),
    Column("headers", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("value", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("consumer_group", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer_group", "topic", "partition"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("instance_id", UUID(as_uuid=False), nullable=False),
    Column("step_id", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("topic", Text, nullable=False),
    Column("event_type", Text),
    Column("match", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("instance_id", "step_id"),
    Index("ix_subscriptions_lookup", "topic", "match", "key"),
)

wait_probes = Table(
    "wait_probes",
    metadata,
    Column("topic", Text, nullable=False),
    Column("match", Text, nullable=False),
    Column("event_type", Text, nullable=False, server_default=text("''")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("topic", "match", "event_type"),
)

event_buffer = Table(
    "event_buffer",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("topic", Text, nullable=False),
    Column("event_type", Text),
    Column("match", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("event", JSONB, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_event_buffer_lookup", "topic", "match", "key"),
    Index("ix_event_buffer_expires", "expires_at"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("approval_id", UUID(as_uuid=False), primary_key=True),
    Column("instance_id", UUID(as_uuid=False), nullable=False),
    Column("workflow_id", Text, nullable=False),
    Column("workflow_version", Integer, nullable=False),
    Column("step_id", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("assignees", JSONB, nullable=False),
    Column("quorum", Text, nullable=False),
    Column("deadline", DateTime(timezone=True)),
    Column("summary", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_approvals_status_workflow", "status", "workflow_id"),
    Index(
        "ix_approvals_assignees",
        "assignees",
        postgresql_using="gin",
        postgresql_ops={"assignees": "jsonb_path_ops"},
    ),
    Index("ix_approvals_instance", "instance_id"),
)

schedules = Table(
    "schedules",
    metadata,
    Column("workflow_id", Text, nullable=False),
    Column("trigger_index", Integer, nullable=False),
    Column("cron", Text, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("next_due", DateTime(timezone=True), nullable=False),
    Column("last_tick", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("workflow_id", "trigger_index"),
    Index("ix_schedules_next_due", "next_due"),
)
