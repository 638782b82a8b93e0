"""Token buckets in Redis, taken atomically by one Lua script (no read-modify-write races
between API processes)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or capacity
local ts = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {allowed, tostring(tokens)}
"""


@dataclass
class BucketResult:
    allowed: bool
    limit: int
    remaining: float
    rate: float  # tokens per second

    @property
    def retry_after(self) -> int:
        return 0 if self.allowed else max(1, math.ceil((1 - self.remaining) / self.rate))

    @property
    def reset(self) -> int:
        """Seconds until the bucket is full again."""
        return max(0, math.ceil((self.limit - self.remaining) / self.rate))

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(int(self.remaining)),
            "RateLimit-Reset": str(self.reset),
        }


class TokenBucket:
    def __init__(self, client: redis.Redis | aioredis.Redis):
        self._take: Any = client.register_script(_TAKE)

    def take(self, key: str, limit: int, per_seconds: float, cost: int = 1) -> BucketResult:
        rate = limit / per_seconds
        allowed, remaining = self._take(keys=[key], args=[limit, rate, cost])
        return BucketResult(bool(allowed), limit, float(remaining), rate)

    async def take_async(self, key: str, limit: int, per_seconds: float, cost: int = 1) -> BucketResult:
        """``take`` for a ``redis.asyncio`` client."""
        rate = limit / per_seconds
        allowed, remaining = await self._take(keys=[key], args=[limit, rate, cost])
        return BucketResult(bool(allowed), limit, float(remaining), rate)
