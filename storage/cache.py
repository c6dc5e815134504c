"""The cache: Redis when `REDIS_URL` is set, an in-process TTL cache otherwise, one interface.

Keys and TTLs are the constants below (README.md lists them under Storage). Values are bytes we encode ourselves: JSON for
documents and Arrow IPC for DataFrames. Nothing is ever unpickled, so whoever can write to the
cache cannot make a reader run code.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa

FRESH_CANDLES_TTL_S = 3600  # 1 hour: predictions need candles at most this old
PREDICTION_TTL_S = 900  # 15 minutes
SYMBOL_METADATA_TTL_S = 86400  # 24 hours
USER_QUOTA_TTL_S = 86400  # 24 hours: a day's count outlives its day by less than a day


def fresh_candles_key(ticker: str, timeframe: str) -> str:
    return f"fresh_candles:{ticker}:{timeframe}"


def prediction_key(symbol_id: str, timeframe: str) -> str:
    return f"prediction:{symbol_id}:{timeframe}"


def symbol_metadata_key(ticker: str) -> str:
    return f"symbol:metadata:{ticker}"


def user_prediction_key(symbol_id: str, timeframe: str, user_id: str) -> str:
    """A signed-in user's own copy of the shared cached prediction (see `PredictionService`)."""
    return f"prediction:{symbol_id}:{timeframe}:user:{user_id}"


def prediction_outlook_key(prediction_id: str, owner: str) -> str:
    """A stored prediction's distribution (its steps' quantiles), as read by `owner` (a user id, or
    `anonymous`): the key names the reader so that a cached read never skips the ownership check."""
    return f"prediction:{prediction_id}:outlook:{owner}"


def prediction_probability_key(prediction_id: str, owner: str, question: str) -> str:
    return f"prediction:{prediction_id}:probability:{owner}:{question}"


def user_quota_key(user_id: str, day: str) -> str:
    """The day's counted forecast calls of a user (`day` as YYYY-MM-DD, UTC)."""
    return f"user:quota:{user_id}:{day}"


class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    def delete(self, key: str) -> None: ...

    def ttl(self, key: str) -> float | None:
        """Seconds left before `key` expires; None when it does not exist."""
        ...


class MemoryCache:
    """A thread-safe in-process TTL cache for users without Redis (one process only)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_items: int = 10_000) -> None:
        self._clock = clock
        self._max_items = max_items
        self._items: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] <= self._clock():
                del self._items[key]
                return None
            return item[1]

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        with self._lock:
            now = self._clock()
            if len(self._items) >= self._max_items:
                self._items = {k: v for k, v in self._items.items() if v[0] > now}
                while len(self._items) >= self._max_items:  # still full: evict the soonest to expire
                    del self._items[min(self._items, key=lambda k: self._items[k][0])]
            self._items[key] = (now + ttl_s, value)

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def ttl(self, key: str) -> float | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] <= self._clock():
                return None
            return item[0] - self._clock()


class RedisCache:
    """Redis-backed cache shared by every replica; `prefix` isolates tenants and tests."""

    def __init__(self, url: str, prefix: str = "") -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix

    def ping(self) -> None:
        self._client.ping()

    def get(self, key: str) -> bytes | None:
        value = self._client.get(self._prefix + key)
        return value.encode() if isinstance(value, str) else value  # bytes: the client never decodes

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self._client.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))

    def delete(self, key: str) -> None:
        self._client.delete(self._prefix + key)

    def ttl(self, key: str) -> float | None:
        left_ms = self._client.pttl(self._prefix + key)
        return None if left_ms < 0 else left_ms / 1000.0

    def delete_prefix(self) -> int:
        """Remove every key under this cache's prefix (tests clean up with it)."""
        if not self._prefix:
            raise ValueError("refusing to delete every key of a Redis database: this cache has no prefix")
        keys = list(self._client.scan_iter(match=self._prefix + "*", count=500))
        return self._client.delete(*keys) if keys else 0


def make_cache(redis_url: str | None, prefix: str = "") -> Cache:
    return RedisCache(redis_url, prefix) if redis_url else MemoryCache()


def encode_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def decode_json(raw: bytes) -> Any:
    return json.loads(raw)


def encode_frame(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_frame(raw: bytes) -> pd.DataFrame:
    with pa.ipc.open_stream(pa.py_buffer(raw)) as reader:
        return reader.read_all().to_pandas()


def get_frame(cache: Cache, key: str) -> pd.DataFrame | None:
    raw = cache.get(key)
    return None if raw is None else decode_frame(raw)


def set_frame(cache: Cache, key: str, frame: pd.DataFrame, ttl_s: float) -> None:
    cache.set(key, encode_frame(frame), ttl_s)


def get_json(cache: Cache, key: str) -> Any | None:
    raw = cache.get(key)
    return None if raw is None else decode_json(raw)


def set_json(cache: Cache, key: str, value: Any, ttl_s: float) -> None:
    cache.set(key, encode_json(value), ttl_s)
