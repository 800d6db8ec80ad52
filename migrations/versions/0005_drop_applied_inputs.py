"""Drop applied_inputs: nothing writes it. Idempotency comes from the applied offsets
(consumer_offsets, in each batch's transaction) and instance ids derived from events.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table("applied_inputs")


def downgrade() -> None:
    op.create_table(
        "applied_inputs",
        sa.Column("input_key", sa.Text(), primary_key=True),
        sa.Column(
            "applied_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.create_index("ix_applied_inputs_applied_at", "applied_inputs", ["applied_at"])
