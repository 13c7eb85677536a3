"""Spaces, their checkpoints, attachments to apps and backups; apps choose a deploy strategy;
releases keep their assets apart; events can name a space

Revision ID: 5f8facd6e961
Revises: 5a7c9e1b3d42
Create Date: 2026-11-28 03:24:31.610091
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import slipway.models.common


revision: str = '5f8facd6e961'
down_revision: str | None = '5a7c9e1b3d42'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('spaces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('origin', sa.String(length=255), server_default='', nullable=False),
    sa.Column('nearly_full', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('created_at', slipway.models.common.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_spaces_owner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spaces')),
    sa.UniqueConstraint('name', name=op.f('uq_spaces_name'))
    )
    with op.batch_alter_table('spaces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spaces_owner_id'), ['owner_id'], unique=False)

    op.create_table('space_attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('space_id', sa.Integer(), nullable=False),
    sa.Column('app_id', sa.Integer(), nullable=False),
    sa.Column('slot', sa.String(length=63), nullable=False),
    sa.Column('process_types', sa.JSON(), server_default='[]', nullable=False),
    sa.Column('created_at', slipway.models.common.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['app_id'], ['apps.id'], name=op.f('fk_space_attachments_app_id_apps'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['space_id'], ['spaces.id'], name=op.f('fk_space_attachments_space_id_spaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_space_attachments')),
    sa.UniqueConstraint('app_id', 'slot', name=op.f('uq_space_attachments_app_id_slot'))
    )
    with op.batch_alter_table('space_attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_space_attachments_app_id'), ['app_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_space_attachments_space_id'), ['space_id'], unique=False)

    op.create_table('space_backups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('space_id', sa.Integer(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('space_name', sa.String(length=63), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('scheduled', sa.Boolean(), nullable=False),
    sa.Column('created_at', slipway.models.common.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_space_backups_owner_id_users')),
    sa.ForeignKeyConstraint(['space_id'], ['spaces.id'], name=op.f('fk_space_backups_space_id_spaces'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_space_backups'))
    )
    with op.batch_alter_table('space_backups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_space_backups_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_space_backups_space_id'), ['space_id'], unique=False)

    op.create_table('space_checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('space_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('created_at', slipway.models.common.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['space_id'], ['spaces.id'], name=op.f('fk_space_checkpoints_space_id_spaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_space_checkpoints')),
    sa.UniqueConstraint('space_id', 'name', name=op.f('uq_space_checkpoints_space_id_name'))
    )
    with op.batch_alter_table('space_checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_space_checkpoints_space_id'), ['space_id'], unique=False)

    with op.batch_alter_table('apps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deploy_strategy', sa.String(length=16), server_default='rolling', nullable=False))

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('space_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_events_space_id'), ['space_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_events_space_id_spaces'), 'spaces', ['space_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assets_path', sa.String(length=1024), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.drop_column('assets_path')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_events_space_id_spaces'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_events_space_id'))
        batch_op.drop_column('space_id')

    with op.batch_alter_table('apps', schema=None) as batch_op:
        batch_op.drop_column('deploy_strategy')

    with op.batch_alter_table('space_checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_space_checkpoints_space_id'))

    op.drop_table('space_checkpoints')
    with op.batch_alter_table('space_backups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_space_backups_space_id'))
        batch_op.drop_index(batch_op.f('ix_space_backups_owner_id'))

    op.drop_table('space_backups')
    with op.batch_alter_table('space_attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_space_attachments_space_id'))
        batch_op.drop_index(batch_op.f('ix_space_attachments_app_id'))

    op.drop_table('space_attachments')
    with op.batch_alter_table('spaces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spaces_owner_id'))

    op.drop_table('spaces')
