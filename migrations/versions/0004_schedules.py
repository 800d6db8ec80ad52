"""Schedule triggers: the next due tick of every schedule trigger of an active definition.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("trigger_index", sa.Integer(), nullable=False),
        sa.Column("cron", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("next_due", TS, nullable=False),
        sa.Column("last_tick", TS),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("workflow_id", "trigger_index"),
    )
    op.create_index("ix_schedules_next_due", "schedules", ["next_due"])


def downgrade() -> None:
    op.drop_table("schedules")
