"""Releases remember the Node.js release they were built on, so restarts and rollbacks keep it

Revision ID: 5a7c9e1b3d42
Revises: 2f8d4c6e0b13
Create Date: 2026-11-27 22:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5a7c9e1b3d42"
down_revision: str | None = "2f8d4c6e0b13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Releases made before this revision ran on the Node.js of their image: "".
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("node_version", sa.String(length=32), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_column("node_version")
