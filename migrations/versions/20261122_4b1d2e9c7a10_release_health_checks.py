"""Releases keep the app.json health checks of their build

Revision ID: 4b1d2e9c7a10
Revises: cd71601e3321
Create Date: 2026-11-22 13:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4b1d2e9c7a10"
down_revision: str | None = "cd71601e3321"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Releases made before this revision had their checks applied at deploy time only.
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("health_checks", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_column("health_checks")
