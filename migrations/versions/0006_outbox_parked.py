"""outbox_parked: outbox rows the broker refused for good, kept with the reason, so one
row can never wedge the relay and nothing refused is silently lost.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox_parked",
        sa.Column("seq", sa.BigInteger(), primary_key=True, comment="The row's outbox seq."),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("key", sa.LargeBinary()),
        sa.Column(
            "headers",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False, comment="The Kafka error's name."),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("parked_at", TS, nullable=False, server_default=sa.text("now()")),
    )
    op.create_index("ix_outbox_parked_parked_at", "outbox_parked", ["parked_at"])


def downgrade() -> None:
    op.drop_table("outbox_parked")
