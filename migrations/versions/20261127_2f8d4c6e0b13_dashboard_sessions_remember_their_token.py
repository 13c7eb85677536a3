"""A dashboard session started with an API token remembers it, and ends when it is revoked

Revision ID: 2f8d4c6e0b13
Revises: 9c3e5a7b1d20
Create Date: 2026-11-27 22:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2f8d4c6e0b13"
down_revision: str | None = "9c3e5a7b1d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Sessions started before this revision name no token; they end at sign-out or after 7 days.
    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_dashboard_sessions_token_id"), ["token_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_dashboard_sessions_token_id_api_tokens"),
            "api_tokens",
            ["token_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_dashboard_sessions_token_id_api_tokens"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_dashboard_sessions_token_id"))
        batch_op.drop_column("token_id")
