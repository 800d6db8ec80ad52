"""Event subscriptions of waiting steps, the early-event buffer, timer lookups by step.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
UUID = postgresql.UUID(as_uuid=False)


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("instance_id", UUID, nullable=False),
        sa.Column("step_id", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text()),
        sa.Column("match", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("instance_id", "step_id"),
    )
    op.create_index("ix_subscriptions_lookup", "subscriptions", ["topic", "match", "key"])
    op.create_table(
        "event_buffer",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text()),
        sa.Column("match", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("event", postgresql.JSONB(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_event_buffer_lookup", "event_buffer", ["topic", "match", "key"])
    op.create_index("ix_event_buffer_expires", "event_buffer", ["expires_at"])
    op.create_index("ix_timers_instance_step", "timers", ["instance_id", "step_id"])
    op.drop_index("ix_timers_instance", table_name="timers")


def downgrade() -> None:
    op.create_index("ix_timers_instance", "timers", ["instance_id"])
    op.drop_index("ix_timers_instance_step", table_name="timers")
    op.drop_table("event_buffer")
    op.drop_table("subscriptions")
