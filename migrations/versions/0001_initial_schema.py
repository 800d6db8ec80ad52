"""Initial schema: definitions, instances, step executions, timers, outbox, applied inputs.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")
TS = sa.DateTime(timezone=True)
UUID = postgresql.UUID(as_uuid=False)
JSONB = postgresql.JSONB()


def upgrade() -> None:
    op.create_table(
        "workflow_definitions",
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("deprecated", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("checksum", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("workflow_id", "version"),
    )
    op.create_table(
        "instances",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.Text()),
        sa.Column("parent_instance_id", UUID),
        sa.Column("parent_step_id", sa.Text()),
        sa.Column("trigger_event_id", sa.Text()),
        sa.Column("state", JSONB, nullable=False),
        sa.Column("input", JSONB),
        sa.Column("output", JSONB),
        sa.Column("error", JSONB),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("completed_at", TS),
    )
    op.create_index("ix_instances_workflow_status", "instances", ["workflow_id", "status"])
    op.create_index("ix_instances_status_updated", "instances", ["status", "updated_at"])
    op.create_index(
        "ix_instances_correlation",
        "instances",
        ["correlation_id"],
        postgresql_where=sa.text("correlation_id IS NOT NULL"),
    )
    op.create_index(
        "ix_instances_parent",
        "instances",
        ["parent_instance_id"],
        postgresql_where=sa.text("parent_instance_id IS NOT NULL"),
    )
    op.create_index("ix_instances_created", "instances", ["created_at"])
    op.create_table(
        "step_executions",
        sa.Column("instance_id", UUID, nullable=False),
        sa.Column("step_id", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("step_type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("input", JSONB),
        sa.Column("output", JSONB),
        sa.Column("error", JSONB),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.PrimaryKeyConstraint("instance_id", "step_id", "attempt"),
    )
    op.create_table(
        "timers",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("instance_id", UUID),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("step_id", sa.Text()),
        sa.Column("attempt", sa.Integer()),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("payload", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("locked_until", TS),
        sa.Column("created_at", TS, nullable=False, server_default=NOW),
    )
    op.create_index("ix_timers_due", "timers", ["due_at"])
    op.create_index("ix_timers_instance", "timers", ["instance_id"])
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("key", sa.LargeBinary()),
        sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=NOW),
    )
    op.create_table(
        "consumer_offsets",
        sa.Column("consumer_group", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TS, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("consumer_group", "topic", "partition"),
    )
    op.create_table(
        "applied_inputs",
        sa.Column("input_key", sa.Text(), primary_key=True),
        sa.Column("applied_at", TS, nullable=False, server_default=NOW),
    )
    op.create_index("ix_applied_inputs_applied_at", "applied_inputs", ["applied_at"])


def downgrade() -> None:
    for table in (
        "applied_inputs",
        "consumer_offsets",
        "outbox",
        "timers",
        "step_executions",
        "instances",
        "workflow_definitions",
    ):
        op.drop_table(table)
