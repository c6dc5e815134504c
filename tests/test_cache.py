"""One cache interface on Redis and in process: keys, TTLs, pickle-free values."""

import time

import numpy as np
import pandas as pd
import pytest

from storage.cache import (
    FRESH_CANDLES_TTL_S,
    PREDICTION_TTL_S,
    SYMBOL_METADATA_TTL_S,
    MemoryCache,
    decode_frame,
    fresh_candles_key,
    get_frame,
    get_json,
    prediction_key,
    set_frame,
    set_json,
    symbol_metadata_key,
)


def test_key_names_and_ttls_of_the_architecture_document() -> None:
    assert fresh_candles_key("X:BTCUSD", "1h") == "fresh_candles:X:BTCUSD:1h"
    assert prediction_key("abc", "1d") == "prediction:abc:1d"
    assert symbol_metadata_key("X:BTCUSD") == "symbol:metadata:X:BTCUSD"
    assert (FRESH_CANDLES_TTL_S, PREDICTION_TTL_S, SYMBOL_METADATA_TTL_S) == (3600, 900, 86400)


def test_frames_roundtrip_exactly(cache) -> None:
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2024-01-01", periods=200, freq="1h", tz="UTC"),
        "close": np.linspace(1e-6, 2e-6, 200), "volume": np.arange(200.0),
    })
    set_frame(cache, fresh_candles_key("X:PEPEUSD", "1h"), frame, FRESH_CANDLES_TTL_S)
    pd.testing.assert_frame_equal(get_frame(cache, fresh_candles_key("X:PEPEUSD", "1h")), frame)
    assert 3590 < cache.ttl(fresh_candles_key("X:PEPEUSD", "1h")) <= 3600
    assert get_frame(cache, "fresh_candles:none:1h") is None


def test_json_values_and_delete(cache) -> None:
    set_json(cache, prediction_key("s1", "1d"), {"steps": [1, 2], "cached": False}, PREDICTION_TTL_S)
    assert get_json(cache, prediction_key("s1", "1d")) == {"steps": [1, 2], "cached": False}
    cache.delete(prediction_key("s1", "1d"))
    assert cache.get(prediction_key("s1", "1d")) is None and cache.ttl(prediction_key("s1", "1d")) is None


def test_ttl_expires(cache) -> None:
    cache.set("symbol:metadata:X:A", b"v", ttl_s=0.3)
    assert cache.get("symbol:metadata:X:A") == b"v"
    time.sleep(0.5)
    assert cache.get("symbol:metadata:X:A") is None


def test_memory_cache_expiry_with_a_fake_clock() -> None:
    now = [1000.0]
    cache = MemoryCache(clock=lambda: now[0], max_items=2)
    cache.set("a", b"1", PREDICTION_TTL_S)
    now[0] += PREDICTION_TTL_S - 1
    assert cache.get("a") == b"1"
    now[0] += 2
    assert cache.get("a") is None
    cache.set("b", b"2", 10)
    cache.set("c", b"3", 20)
    cache.set("d", b"4", 30)  # full: the soonest to expire goes
    assert cache.get("b") is None and cache.get("d") == b"4"


def test_pickled_bytes_are_never_unpickled(cache) -> None:
    import pickle

    cache.set("fresh_candles:X:EVIL:1h", pickle.dumps({"x": 1}), 60)
    with pytest.raises(Exception) as info:
        get_frame(cache, "fresh_candles:X:EVIL:1h")
    assert "pickle" not in type(info.value).__module__
    with pytest.raises(ValueError):  # pyarrow's ArrowInvalid: not Arrow IPC, never unpickled
        decode_frame(b"\x80\x04junk")
