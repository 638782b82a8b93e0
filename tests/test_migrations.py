"""The Alembic migrations and the SQLModel tables agree (what `alembic check` checks), and the
newest migration goes down and up again cleanly. On a scratch PostgreSQL database of its own."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

import shared.domain.models  # noqa: F401  (registers the tables)
from shared.infra.migrate import alembic_config, upgrade_head
from tests.conftest import TEST_DB

SCRATCH = f"{TEST_DB}_migrations"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{SCRATCH}"


@pytest.fixture
def scratch():
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{SCRATCH}"')
    engine = create_engine(URL)
    yield engine
    engine.dispose()
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)')


def diffs(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)


def test_models_match_the_migrations_and_the_head_goes_down_and_up(scratch):
    upgrade_head(URL)
    assert diffs(scratch) == []
    with scratch.connect() as conn:  # the generated search column is there and kept up to date by PostgreSQL
        kind = conn.execute(
            text(
                "SELECT is_generated FROM information_schema.columns "
                "WHERE table_name = 'sounds' AND column_name = 'search_vector'"
            )
        ).scalar()
    assert kind == "ALWAYS"
    command.downgrade(alembic_config(URL), "-1")
    assert diffs(scratch) != []  # the library columns are gone
    upgrade_head(URL)
    assert diffs(scratch) == []
