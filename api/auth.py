"""Who is calling: API keys (Authorization: Bearer), optional anonymous access, admin checks,
and per-key rate limits by route class."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

import structlog
from fastapi import Depends, Request

from api.deps import RedisDep, SessionDep, SettingsDep
from api.problems import ProblemException
from shared.domain.accounts import account_for_key, anonymous_account
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


def current_principal(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("the Authorization header must be 'Bearer <api key>'")
        account = account_for_key(session, token.strip())
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


def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise ProblemException(403, "this route is for admin keys")
    return principal


@lru_cache
def _bucket(redis) -> TokenBucket:
    return TokenBucket(redis)  # one registered script per Redis client, not one per request


def rate_limit(route_class: str):
    """A dependency charging one request to the caller's bucket for ``route_class``."""

    def charge(request: Request, principal: CurrentPrincipal, settings: SettingsDep, redis: RedisDep) -> None:
        limit, per = settings.rate_limits.get(route_class, settings.rate_limits["read"])
        try:
            result = _bucket(redis).take(f"soundbox:ratelimit:{route_class}:{principal.key}", limit, per)
        except Exception as exc:  # Redis trouble must not take the API down: fail open, loudly
            log.warning("rate limiter unavailable", error=str(exc))
            return
        request.state.rate_limit_headers = result.headers()
        if not result.allowed:
            raise ProblemException(
                429, f"rate limit exceeded for {route_class} requests: {limit} per {per} s per key",
                title="Too Many Requests", headers={**result.headers(), "Retry-After": str(result.retry_after)})

    return Depends(charge)
