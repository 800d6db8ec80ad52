"""wait_probes: what event waits chosen at run time listen for (a code-first workflow's
`wait_for_event` names its topic and match only when it runs), so every worker checks
consumed events against them as it does for the waits declared in definitions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wait_probes",
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("match", sa.Text(), nullable=False),
        sa.Column(
            "event_type", sa.Text(), nullable=False, server_default="", comment="'' for any type"
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("topic", "match", "event_type"),
    )


def downgrade() -> None:
    op.drop_table("wait_probes")
