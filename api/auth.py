"""Who is calling: API keys (Authorization: Bearer), optional anonymous access, admin checks,
and per-key rate limits by route class."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

import structlog
from cachetools import TTLCache
from fastapi import Depends, Request

from api.deps import RedisDep, SessionDep, SettingsDep
from api.problems import ProblemException
from shared.domain.accounts import account_for_key, anonymous_account, hash_key
from shared.domain.models import Account
from shared.infra.ratelimit import TokenBucket

log = structlog.get_logger()


@dataclass
class Principal:
    account: Account
    key: str  # what rate limits count against: the key's prefix, or "anon:<client address>"

    @property
    def is_admin(self) -> bool:
        return self.account.is_admin

    def owns(self, account_id) -> bool:
        return self.account.is_admin or account_id == self.account.id


def _unauthorized(detail: str) -> ProblemException:
    return ProblemException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="soundbox"'})


_KEY_CACHE_SIZE = 10_000
_key_cache: TTLCache | None = None
_key_cache_lock = threading.Lock()


def cached_account_for_key(session, secret: str, ttl: float) -> Account | None:
    """``account_for_key``, remembered for ``ttl`` seconds per key (0: not at all), so a busy key
    costs one database round trip per ``ttl``, not one per request. Only live keys are
    remembered; a revocation through this process applies at once (:func:`forget_keys`), one
    through another process or the CLI within ``ttl``."""
    global _key_cache
    if ttl <= 0:
        return account_for_key(session, secret)
    digest = hash_key(secret)
    with _key_cache_lock:
        if _key_cache is None or _key_cache.ttl != ttl:
            _key_cache = TTLCache(maxsize=_KEY_CACHE_SIZE, ttl=ttl)
        account = _key_cache.get(digest)
    if account is not None:
        return account
    found = account_for_key(session, secret)
    if found is None:
        return None
    # a copy bound to no session: a rollback in some later request cannot expire what is shared
    account = Account(**found.model_dump())
    with _key_cache_lock:
        _key_cache[digest] = account
    return account


def forget_keys() -> None:
    with _key_cache_lock:
        if _key_cache is not None:
            _key_cache.clear()


def current_principal(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("the Authorization header must be 'Bearer <api key>'")
        account = cached_account_for_key(session, token.strip(), settings.api_key_cache_seconds)
        if account is None:
            raise _unauthorized("this API key is not valid or has been revoked")
        principal = Principal(account, token.strip()[:12])
    elif settings.allow_anonymous:
        host = request.client.host if request.client else "unknown"
        principal = Principal(anonymous_account(session), f"anon:{host}")
    else:
        raise _unauthorized("an API key is required: send 'Authorization: Bearer <api key>'")
    structlog.contextvars.bind_contextvars(account_id=str(principal.account.id))
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def optional_principal(request: Request, session: SessionDep, settings: SettingsDep) -> Principal | None:
    """The caller when it sends a key (a bad key is still 401) or anonymous access is on; None otherwise.
    For routes that answer without a key (public and unlisted sounds, the public library)."""
    if request.headers.get("authorization") or settings.allow_anonymous:
        return current_principal(request, session, settings)
    return None


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def signed_in(principal: OptionalPrincipal) -> Principal:
    """``current_principal`` for routers included with ``optional_principal``: one key lookup per request."""
    if principal is None:
        raise _unauthorized("an API key is required: send 'Authorization: Bearer <api key>'")
    return principal


SignedIn = Annotated[Principal, Depends(signed_in)]


def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise ProblemException(403, "this route is for admin keys")
    return principal


@lru_cache
def _bucket(redis) -> TokenBucket:
    return TokenBucket(redis)  # one registered script per Redis client, not one per request


def rate_limit(route_class: str, optional: bool = False):
    """A dependency charging one request to the caller's bucket for ``route_class`` (``optional``:
    for routers that answer without a key; keyless callers count by client address)."""

    def charge(request: Request, principal: CurrentPrincipal, settings: SettingsDep, redis: RedisDep) -> None:
        _charge(request, principal.key, route_class, settings, redis)

    def charge_optional(request: Request, principal: OptionalPrincipal, settings: SettingsDep, redis: RedisDep) -> None:
        host = request.client.host if request.client else "unknown"
        _charge(request, principal.key if principal else f"anon:{host}", route_class, settings, redis)

    return Depends(charge_optional if optional else charge)


def _charge(request: Request, key: str, route_class: str, settings, redis) -> None:
    limit, per = settings.rate_limits.get(route_class, settings.rate_limits["read"])
    try:
        result = _bucket(redis).take(f"soundbox:ratelimit:{route_class}:{key}", limit, per)
    except Exception as exc:  # Redis trouble must not take the API down: fail open, loudly
        log.warning("rate limiter unavailable", error=str(exc))
        return
    request.state.rate_limit_headers = result.headers()
    if not result.allowed:
        raise ProblemException(
            429,
            f"rate limit exceeded for {route_class} requests: {limit} per {per} s per key",
            title="Too Many Requests",
            headers={**result.headers(), "Retry-After": str(result.retry_after)},
        )
