"""Definitions disabled as a whole.

- `disabled_workflows`: one row per workflow that is disabled: no trigger starts it and
  start commands for it are refused, while its running instances go on. Enabling it again
  deletes the row. Deprecation stays per version (`workflow_definitions.deprecated`).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "disabled_workflows",
        sa.Column("workflow_id", sa.Text(), primary_key=True),
        sa.Column(
            "disabled_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.Column("disabled_by", sa.Text(), comment="Who disabled it (the API principal)."),
    )


def downgrade() -> None:
    op.drop_table("disabled_workflows")
