"""Reusable tasks: stored task versions, and which definition versions were made from them.

- `task_definitions`: one row per task version, immutable once stored (like
  `workflow_definitions`: the document without its version, and its checksum).
- `task_uses`: for each step of a stored definition version that was made from a task,
  the task version it was made from. Deleting the definition version deletes its rows; a
  task version that is used cannot be deleted.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_definitions",
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("document", postgresql.JSONB(), nullable=False),
        sa.Column("checksum", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("task_id", "version"),
    )
    op.create_table(
        "task_uses",
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Text(), nullable=False),
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("task_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "workflow_version", "step_id"),
        sa.ForeignKeyConstraint(
            ["workflow_id", "workflow_version"],
            ["workflow_definitions.workflow_id", "workflow_definitions.version"],
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id", "task_version"],
            ["task_definitions.task_id", "task_definitions.version"],
        ),
    )
    op.create_index("ix_task_uses_task", "task_uses", ["task_id", "task_version"])


def downgrade() -> None:
    op.drop_index("ix_task_uses_task", table_name="task_uses")
    op.drop_table("task_uses")
    op.drop_table("task_definitions")
