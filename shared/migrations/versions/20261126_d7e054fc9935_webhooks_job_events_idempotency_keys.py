"""webhooks, job events, idempotency keys

Jobs gain a webhook URL and the event types it wants; webhook secrets (per account, with the
previous one kept during a rotation), deliveries (an outbox row per event and URL) and their
attempts, URLs disabled by a 410, and Idempotency-Keys of POST /v1/generations.

Revision ID: d7e054fc9935
Revises: 568bff43b966
Create Date: 2026-11-26 05:17:31.477670
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
from sqlalchemy.dialects import postgresql


revision: str = 'd7e054fc9935'
down_revision: Union[str, None] = '568bff43b966'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('webhook_url', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=True))
    op.add_column('jobs', sa.Column('webhook_events', postgresql.JSONB(astext_type=sa.Text()),
                                    server_default=sa.text("'[]'::jsonb"), nullable=False))

    op.create_table('webhook_secrets',
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('secret', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('previous_secret', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('previous_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name='fk_webhook_secrets_account_id', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', name='pk_webhook_secrets')
    )

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('event_type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
    sa.Column('webhook_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name='fk_webhook_deliveries_account_id', ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name='fk_webhook_deliveries_job_id', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name='pk_webhook_deliveries'),
    sa.UniqueConstraint('webhook_id', name='uq_webhook_deliveries_webhook_id')
    )
    op.create_index('ix_webhook_deliveries_account_id', 'webhook_deliveries', ['account_id'], unique=False)
    op.create_index('ix_webhook_deliveries_job_id', 'webhook_deliveries', ['job_id'], unique=False)
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text("state = 'pending'"))

    op.create_table('webhook_attempts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('delivery_id', sa.Uuid(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'], name='fk_webhook_attempts_delivery_id',
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name='pk_webhook_attempts'),
    sa.UniqueConstraint('delivery_id', 'attempt', name='uq_webhook_attempts_delivery_attempt')
    )
    op.create_index('ix_webhook_attempts_delivery_id', 'webhook_attempts', ['delivery_id'], unique=False)

    op.create_table('webhook_disabled_urls',
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivery_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name='fk_webhook_disabled_urls_account_id',
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'url', name='pk_webhook_disabled_urls')
    )

    op.create_table('idempotency_keys',
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('request_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name='fk_idempotency_keys_account_id', ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name='fk_idempotency_keys_job_id', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'key', name='pk_idempotency_keys')
    )
    op.create_index('ix_idempotency_keys_expires_at', 'idempotency_keys', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_idempotency_keys_expires_at', table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    op.drop_table('webhook_disabled_urls')
    op.drop_index('ix_webhook_attempts_delivery_id', table_name='webhook_attempts')
    op.drop_table('webhook_attempts')
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries',
                  postgresql_where=sa.text("state = 'pending'"))
    op.drop_index('ix_webhook_deliveries_job_id', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_account_id', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_secrets')
    op.drop_column('jobs', 'webhook_events')
    op.drop_column('jobs', 'webhook_url')
