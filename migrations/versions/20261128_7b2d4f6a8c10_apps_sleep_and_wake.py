"""Apps sleep when idle and wake on a request: their sleep setting, the process types that
sleep with web, whether they sleep now and when they were last active

Revision ID: 7b2d4f6a8c10
Revises: 5f8facd6e961
Create Date: 2026-11-28 12:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import slipway.models.common


revision: str = "7b2d4f6a8c10"
down_revision: str | None = "5f8facd6e961"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sleep_after", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("sleep_types", sa.String(length=255), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("sleeping", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "active_at", slipway.models.common.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("active_at")
        batch_op.drop_column("sleeping")
        batch_op.drop_column("sleep_types")
        batch_op.drop_column("sleep_after")
