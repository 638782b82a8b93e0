"""Accounts and API keys: creation, lookup by key, listing, revocation (CLI and admin API)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col, select

from shared.domain.models import ANONYMOUS_ACCOUNT_ID, Account, ApiKey, utcnow
from shared.domain.tiers import DEFAULT_TIER
from shared.infra import aiodb

KEY_PREFIX = "sbx_"


def hash_key(key: str) -> str:
    """Keys are 256-bit random tokens, so a plain SHA-256 is a safe one-way store."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class NewKey:
    account: Account
    key: ApiKey
    secret: str  # shown once, never stored


def create_account_with_key(session: Session, name: str, tier: str, is_admin: bool = False) -> NewKey:
    account = Account(name=name, tier=tier, is_admin=is_admin)
    session.add(account)
    session.flush()
    return add_key(session, account, name)


def add_key(session: Session, account: Account, name: str) -> NewKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(account_id=account.id, name=name, prefix=secret[:12], key_hash=hash_key(secret))
    session.add(key)
    session.flush()
    return NewKey(account, key, secret)


def _use_key_stmt(secret: str):
    return (
        update(ApiKey)
        .where(col(ApiKey.key_hash) == hash_key(secret), col(ApiKey.revoked_at).is_(None))
        .values(last_used_at=utcnow())
        .returning(col(ApiKey.account_id))
    )


def account_for_key(session: Session, secret: str) -> Account | None:
    """The account a live key belongs to (and note the key's use), or None."""
    row = session.exec(_use_key_stmt(secret)).first()
    if row is None:
        return None
    session.commit()
    return session.get(Account, row[0])


_ACCOUNTS, _KEYS = Account.__table__, ApiKey.__table__  # type: ignore[attr-defined]
# account_for_key for the API's async pool: note the key's use and read its account, one statement
_USE_KEY = aiodb.Query(
    update(_KEYS)
    .where(
        _KEYS.c.key_hash == bindparam("key_hash", type_=_KEYS.c.key_hash.type),
        _KEYS.c.revoked_at.is_(None),
        _ACCOUNTS.c.id == _KEYS.c.account_id,
    )
    .values(last_used_at=bindparam("now", type_=_KEYS.c.last_used_at.type))
    .returning(*_ACCOUNTS.c)
)
_ACCOUNT = aiodb.Query(select(_ACCOUNTS).where(_ACCOUNTS.c.id == bindparam("id", type_=_ACCOUNTS.c.id.type)))
_ADD_ACCOUNT = aiodb.Query(insert(_ACCOUNTS).on_conflict_do_nothing(index_elements=["id"]))


async def account_for_key_async(secret: str) -> Account | None:
    """``account_for_key`` on the API's event loop (shared/infra/aiodb.py)."""
    row = await aiodb.fetch_one(_USE_KEY, {"key_hash": hash_key(secret), "now": utcnow()})
    return None if row is None else Account.model_validate(row)


def anonymous_account(session: Session) -> Account:
    account = session.get(Account, ANONYMOUS_ACCOUNT_ID)
    if account is None:  # created by the migration; recreated if someone deleted it
        account = Account(id=ANONYMOUS_ACCOUNT_ID, name="anonymous", tier=DEFAULT_TIER)
        session.add(account)
        session.commit()
    return account


async def anonymous_account_async() -> Account:
    row = await aiodb.fetch_one(_ACCOUNT, {"id": ANONYMOUS_ACCOUNT_ID})
    if row is None:  # created by the migration; recreated if someone deleted it
        account = Account(id=ANONYMOUS_ACCOUNT_ID, name="anonymous", tier=DEFAULT_TIER, created_at=utcnow())
        await aiodb.fetch(_ADD_ACCOUNT, account.model_dump())
        row = await aiodb.fetch_one(_ACCOUNT, {"id": ANONYMOUS_ACCOUNT_ID})
    return Account.model_validate(row)


def list_keys(session: Session) -> list[tuple[ApiKey, Account]]:
    return list(
        session.exec(
            select(ApiKey, Account)
            .join(Account, col(Account.id) == col(ApiKey.account_id))
            .order_by(col(ApiKey.created_at))
        ).all()
    )


def revoke_key(session: Session, key_ref: str) -> ApiKey | None:
    """Revoke by key id or by the prefix shown in listings."""
    try:
        where = col(ApiKey.id) == uuid.UUID(key_ref)
    except ValueError:
        where = col(ApiKey.prefix) == key_ref
    key = session.exec(select(ApiKey).where(where)).first()
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        session.flush()
    return key
