"""The dashboard's reads: dead letters and refused decisions recorded from their topics, an
audit log of what people did through the API, and instance indexes for filtered lists,
counts and throughput that never scan the whole table.

- `dead_letters`: each record of the dead-letter topic once (unique on its topic,
  partition and offset), with the reason, where the record came from, and the dead-letter
  event's copy of it (at most 64 KiB), for the list, the detail and replays.
- `decision_refusals`: each `flowbus.approval.decision_refused` event of a known approval
  once (unique on its event id), so a page can show why a decision changed nothing.
- `audit_log`: who did what through the API on someone's behalf (a replay, a decision).
- instances: the list's filters each get an index ending in (created_at, id), the keyset
  of its pages, in place of the indexes they extend (same number of indexes, so writes
  cost the same); ended instances get a partial index on completed_at for throughput.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("topic", sa.Text(), nullable=False, comment="The dead-letter record's topic."),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Text()),
        sa.Column("kind", sa.Text(), nullable=False, comment="deadletter, parked or unreadable"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("definition_id", sa.Text()),
        sa.Column("source_topic", sa.Text()),
        sa.Column("source_partition", sa.Integer()),
        sa.Column("source_offset", sa.BigInteger()),
        sa.Column("event_type", sa.Text(), comment="The original event's type, when readable."),
        sa.Column("key", sa.LargeBinary()),
        sa.Column("key_complete", sa.Boolean(), nullable=False),
        sa.Column("value", sa.LargeBinary(), comment="The dead-letter event's copy (<= 64 KiB)."),
        sa.Column("value_complete", sa.Boolean(), nullable=False),
        sa.Column("dead_lettered_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False, server_default=sa.text("now()")),
        sa.Column("replayed_at", TS),
        sa.Column("replays", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.UniqueConstraint("topic", "partition", "offset", name="uq_dead_letters_record"),
    )
    op.create_index("ix_dead_letters_time", "dead_letters", ["dead_lettered_at", "id"])
    op.create_index(
        "ix_dead_letters_source_time", "dead_letters", ["source_topic", "dead_lettered_at", "id"]
    )

    op.create_table(
        "decision_refusals",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Text(), nullable=False, unique=True),
        sa.Column("approval_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("instance_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("decided_by", sa.Text()),
        sa.Column("decision", sa.Text()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decision_id", sa.Text()),
        sa.Column("numbered", sa.Boolean(), nullable=False, comment="Decided by the instance."),
        sa.Column("refused_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False, server_default=sa.text("now()")),
    )
    op.create_index(
        "ix_decision_refusals_approval", "decision_refusals", ["approval_id", "refused_at"]
    )
    op.create_index("ix_decision_refusals_time", "decision_refusals", ["refused_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("at", TS, nullable=False, server_default=sa.text("now()")),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("details", postgresql.JSONB(), nullable=False),
    )
    op.create_index("ix_audit_log_subject", "audit_log", ["action", "subject", "at"])

    op.drop_index("ix_instances_created", table_name="instances")
    op.drop_index("ix_instances_status_updated", table_name="instances")
    op.drop_index("ix_instances_workflow_status", table_name="instances")
    op.create_index("ix_instances_created", "instances", ["created_at", "id"])
    op.create_index("ix_instances_status_created", "instances", ["status", "created_at", "id"])
    op.create_index(
        "ix_instances_workflow_status",
        "instances",
        ["workflow_id", "status", "created_at", "id"],
    )
    op.create_index(
        "ix_instances_completed",
        "instances",
        ["completed_at"],
        postgresql_include=["status", "created_at"],
        postgresql_where=sa.text("completed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_instances_completed", table_name="instances")
    op.drop_index("ix_instances_workflow_status", table_name="instances")
    op.drop_index("ix_instances_status_created", table_name="instances")
    op.drop_index("ix_instances_created", table_name="instances")
    op.create_index("ix_instances_workflow_status", "instances", ["workflow_id", "status"])
    op.create_index("ix_instances_status_updated", "instances", ["status", "updated_at"])
    op.create_index("ix_instances_created", "instances", ["created_at"])
    op.drop_table("audit_log")
    op.drop_table("decision_refusals")
    op.drop_table("dead_letters")
