"""accounts and api keys; ownership; queue priority

Revision ID: 568bff43b966
Revises: eddd168ac0f3
Create Date: 2026-11-26 05:05:14.504451
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '568bff43b966'
down_revision: Union[str, None] = 'eddd168ac0f3'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ANONYMOUS = '00000000-0000-0000-0000-000000000001'  # shared.domain.models.ANONYMOUS_ACCOUNT_ID


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('tier', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('api_keys',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('prefix', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    op.create_index(op.f('ix_api_keys_account_id'), 'api_keys', ['account_id'], unique=False)
    op.create_index(op.f('ix_api_keys_prefix'), 'api_keys', ['prefix'], unique=False)
    # Existing jobs and sounds belong to the built-in anonymous account.
    op.execute(f"INSERT INTO accounts (id, name, tier, is_admin, created_at) "
               f"VALUES ('{ANONYMOUS}', 'anonymous', 'free', false, now())")
    for table in ("jobs", "sounds"):
        op.add_column(table, sa.Column('account_id', sa.Uuid(), nullable=False, server_default=ANONYMOUS))
        op.alter_column(table, 'account_id', server_default=None)
        op.create_index(f'ix_{table}_account_id', table, ['account_id'], unique=False)
        op.create_foreign_key(f'fk_{table}_account_id', table, 'accounts', ['account_id'], ['id'])
    op.add_column('jobs', sa.Column('queue_priority', sa.Integer(), nullable=False, server_default='5'))
    op.execute("UPDATE jobs SET queue_priority = priority")
    op.alter_column('jobs', 'queue_priority', server_default=None)


def downgrade() -> None:
    op.drop_column('jobs', 'queue_priority')
    for table in ("sounds", "jobs"):
        op.drop_constraint(f'fk_{table}_account_id', table, type_='foreignkey')
        op.drop_index(f'ix_{table}_account_id', table_name=table)
        op.drop_column(table, 'account_id')
    op.drop_index(op.f('ix_api_keys_prefix'), table_name='api_keys')
    op.drop_index(op.f('ix_api_keys_account_id'), table_name='api_keys')
    op.drop_table('api_keys')
    op.drop_table('accounts')
