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

from api.deps import get_async_redis
from api.problems import ProblemException
from shared.domain import limits
from shared.domain.accounts import account_for_key, account_for_key_async, anonymous_account_async, hash_key
from shared.domain.models import Account
from shared.infra.ratelimit import TokenBucket
from shared.settings import Settings, get_settings

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
_ANONYMOUS = "anonymous"  # the anonymous account's entry in the key cache


def _cache(ttl: float) -> TTLCache:
    global _key_cache
    with _key_cache_lock:
        if _key_cache is None or _key_cache.ttl != ttl:
            _key_cache = TTLCache(maxsize=_KEY_CACHE_SIZE, ttl=ttl)
        return _key_cache


def _remember(cache: TTLCache, name: str, found: Account) -> Account:
    # a copy bound to no session: a rollback in some later request cannot expire what is shared
    account = Account(**found.model_dump())
    with _key_cache_lock:
        cache[name] = account
    return account


def cached_account_for_key(session, secret: str, ttl: float) -> Account | None:
    """``account_for_key``, remembered for ``ttl`` seconds per key (0: not at all), so a busy key
    costs one database round trip per ``ttl``, not one per request. Only live keys are
    remembered; a revocation through this process applies at once (:func:`forget_keys`), one
    through another process or the CLI within ``ttl``."""
    if ttl <= 0:
        return account_for_key(session, secret)
    cache, digest = _cache(ttl), hash_key(secret)
    with _key_cache_lock:
        account = cache.get(digest)
    if account is not None:
        return account
    found = account_for_key(session, secret)
    return None if found is None else _remember(cache, digest, found)


async def cached_account_for_key_async(secret: str, ttl: float) -> Account | None:
    """:func:`cached_account_for_key` on the event loop: a cached key costs no I/O at all."""
    if ttl <= 0:
        return await account_for_key_async(secret)
    cache, digest = _cache(ttl), hash_key(secret)
    with _key_cache_lock:
        account = cache.get(digest)
    if account is not None:
        return account
    found = await account_for_key_async(secret)
    return None if found is None else _remember(cache, digest, found)


async def cached_anonymous_account(ttl: float) -> Account:
    """The shared anonymous account, remembered like a key (its tier changes apply within ``ttl``)."""
    if ttl <= 0:
        return await anonymous_account_async()
    cache = _cache(ttl)
    with _key_cache_lock:
        account = cache.get(_ANONYMOUS)
    if account is not None:
        return account
    return _remember(cache, _ANONYMOUS, await anonymous_account_async())


def forget_keys() -> None:
    with _key_cache_lock:
        if _key_cache is not None:
            _key_cache.clear()


async def current_principal(request: Request) -> Principal:
    """Who is calling, without a thread hop: keys and the anonymous account are cached for
    ``api_key_cache_seconds``; a miss is one statement on the async pool (shared/infra/aiodb.py)."""
    settings = get_settings()
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("the Authorization header must be 'Bearer <api key>'")
        account = await cached_account_for_key_async(token.strip(), settings.api_key_cache_seconds)
        if account is None:
            raise _unauthorized("this API key is not valid or has been revoked")
        principal = Principal(account, token.strip()[:12])
    elif settings.allow_anonymous:
        host = request.client.host if request.client else "unknown"
        principal = Principal(await cached_anonymous_account(settings.api_key_cache_seconds), f"anon:{host}")
    else:
        raise _unauthorized("an API key is required: send 'Authorization: Bearer <api key>'")
    structlog.contextvars.bind_contextvars(account_id=str(principal.account.id))
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def optional_principal(request: Request) -> Principal | None:
    """The caller when it sends a key (a bad key is still 401) or anonymous access is on; None otherwise.
    For routes that answer without a key (public and unlisted sounds, the public library)."""
    if request.headers.get("authorization") or get_settings().allow_anonymous:
        return await current_principal(request)
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
    for routers that answer without a key; keyless callers count by client address). Async: one
    EVALSHA on the event loop, no thread hop."""

    async def charge(request: Request, principal: CurrentPrincipal) -> None:
        await _charge(request, principal.key, route_class)

    async def charge_optional(request: Request, principal: OptionalPrincipal) -> None:
        host = request.client.host if request.client else "unknown"
        await _charge(request, principal.key if principal else f"anon:{host}", route_class)

    return Depends(charge_optional if optional else charge)


def rate_bucket(principal: Principal, route_class: str, settings: Settings) -> limits.Bucket:
    """The caller's bucket for ``route_class``, for a route that charges it inside its own Redis
    script (POST /v1/generations: with the job's admission, shared/domain/limits.py)."""
    limit, per = settings.rate_limits.get(route_class, settings.rate_limits["read"])
    return limits.Bucket(_bucket_key(route_class, principal.key), limit, per, route_class)


def _bucket_key(route_class: str, caller: str) -> str:
    return f"soundbox:ratelimit:{route_class}:{caller}"


async def _charge(request: Request, key: str, route_class: str) -> None:
    settings = get_settings()
    limit, per = settings.rate_limits.get(route_class, settings.rate_limits["read"])
    try:
        result = await _bucket(await get_async_redis()).take_async(_bucket_key(route_class, key), limit, per)
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
