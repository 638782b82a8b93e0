"""library: titles, tags, visibility, categories, tombstones, full-text search; prompt guidance on jobs

Sounds gain the owner's title and tags, a visibility (private by default), categories (a JSON
list of {name, group, score}), deleted_at (a deleted sound's row stays as the job's tombstone)
and a generated tsvector over title and prompt with a GIN index. Jobs gain the prompt warnings
recorded at submit and how "auto" chose the model.

Revision ID: 3b1f0c2a9d14
Revises: d7e054fc9935
Create Date: 2026-12-02 01:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '3b1f0c2a9d14'
down_revision: str | None = 'd7e054fc9935'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCH_VECTOR_SQL = ("setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
                     "setweight(to_tsvector('english'::regconfig, prompt), 'B')")


def upgrade() -> None:
    op.add_column('jobs', sa.Column('warnings', postgresql.JSONB(astext_type=sa.Text()),
                                    server_default=sa.text("'[]'::jsonb"), nullable=False))
    op.add_column('jobs', sa.Column('model_choice', postgresql.JSONB(astext_type=sa.Text()), nullable=True))

    op.add_column('sounds', sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
    op.add_column('sounds', sa.Column('tags', postgresql.ARRAY(sa.String(length=64)),
                                      server_default=sa.text("'{}'::varchar[]"), nullable=False))
    op.add_column('sounds', sa.Column('visibility', sqlmodel.sql.sqltypes.AutoString(length=16),
                                      server_default='private', nullable=False))
    op.add_column('sounds', sa.Column('categories', postgresql.JSONB(astext_type=sa.Text()),
                                      server_default=sa.text("'[]'::jsonb"), nullable=False))
    op.add_column('sounds', sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('sounds', sa.Column('search_vector', postgresql.TSVECTOR(),
                                      sa.Computed(SEARCH_VECTOR_SQL, persisted=True), nullable=True))
    op.create_index('ix_sounds_search', 'sounds', ['search_vector'], unique=False, postgresql_using='gin')
    op.create_index('ix_sounds_tags', 'sounds', ['tags'], unique=False, postgresql_using='gin')
    op.create_index('ix_sounds_categories', 'sounds', ['categories'], unique=False, postgresql_using='gin',
                    postgresql_ops={'categories': 'jsonb_path_ops'})
    op.create_index('ix_sounds_account_created', 'sounds', ['account_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_sounds_public_created', 'sounds', ['created_at', 'id'], unique=False,
                    postgresql_where=sa.text("visibility = 'public' AND deleted_at IS NULL"))


def downgrade() -> None:
    op.drop_index('ix_sounds_public_created', table_name='sounds')
    op.drop_index('ix_sounds_account_created', table_name='sounds')
    op.drop_index('ix_sounds_categories', table_name='sounds')
    op.drop_index('ix_sounds_tags', table_name='sounds')
    op.drop_index('ix_sounds_search', table_name='sounds')
    for column in ('search_vector', 'deleted_at', 'categories', 'visibility', 'tags', 'title'):
        op.drop_column('sounds', column)
    op.drop_column('jobs', 'model_choice')
    op.drop_column('jobs', 'warnings')
