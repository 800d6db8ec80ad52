"""Approvals: pending and decided approval requests, queryable by assignee and workflow.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("approval_id", postgresql.UUID(as_uuid=False), primary_key=True),
        sa.Column("instance_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("assignees", postgresql.JSONB(), nullable=False),
        sa.Column("quorum", sa.Text(), nullable=False),
        sa.Column("deadline", TS),
        sa.Column("summary", postgresql.JSONB()),
        sa.Column("created_at", TS, nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    )
    op.create_index("ix_approvals_status_workflow", "approvals", ["status", "workflow_id"])
    op.create_index(
        "ix_approvals_assignees",
        "approvals",
        ["assignees"],
        postgresql_using="gin",
        postgresql_ops={"assignees": "jsonb_path_ops"},
    )
    op.create_index("ix_approvals_instance", "approvals", ["instance_id"])


def downgrade() -> None:
    op.drop_table("approvals")
