"""The worker's Redis client, shared by its agents (one connection pool)."""

from __future__ import annotations

from functools import cache

import redis.asyncio as aioredis

from app.settings import settings


@cache
def worker_redis() -> aioredis.Redis:
    return aioredis.from_url(settings().redis, socket_timeout=10, socket_connect_timeout=3)
