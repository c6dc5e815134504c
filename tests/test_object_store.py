"""DATA_DIR and MODEL_DIR on an object store (S3's API, served on loopback by moto): the lake,
the registry with its verified downloads, and a weekly training whose checkpoints, lake and
models all live in the bucket, then served from there."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pytest

from storage.lake import Lake
from storage.lake_reads import LakeReads
from storage.location import Location, is_remote, join
from storage.registry import ArtifactError, ModelRegistry, TrainingInfo


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """A bucket on a loopback S3 server; yields a URI prefix that pyarrow (and Ray) can open. The
    test credentials ride in the URI: Ray's workers may have started before this fixture, so they
    would not see credentials set in the environment now (a cluster uses its nodes' IAM role)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail("the loopback S3 server did not start")
                time.sleep(0.2)
        pafs.S3FileSystem(access_key="test", secret_key="test", endpoint_override=f"127.0.0.1:{port}", scheme="http",
                          region="us-east-1", allow_bucket_creation=True).create_dir("cryptocast")
        yield f"s3://test:test@cryptocast?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_locations_join_paths_and_uris() -> None:
    assert join("/var/models", "1d", "v1.0") == "/var/models/1d/v1.0"
    assert join("s3://b/models?scheme=http", "1d", "v1.0") == "s3://b/models/1d/v1.0?scheme=http"
    assert is_remote("s3://b/x") and is_remote("gs://b") and not is_remote("/tmp/x") and not is_remote("var/x")
    with pytest.raises(ValueError, match="cannot open storage location"):
        Location.of("nosuchscheme://x/y")


def _candles(n: int, start: str = "2024-01-01") -> pd.DataFrame:
    stamps = pd.date_range(start, periods=n, freq="1D", tz="UTC")
    close = 100 * np.exp(np.cumsum(np.random.default_rng(n).normal(0, 0.02, n)))
    return pd.DataFrame({"timestamp": stamps, "open": close, "high": close * 1.01, "low": close * 0.99,
                         "close": close, "volume": np.full(n, 10.0)})


def test_the_lake_on_an_object_store_behaves_like_the_local_one(s3: str, tmp_path: Path) -> None:
    remote, local = Lake(join(s3, "lake-a")), Lake(tmp_path)
    for lake in (remote, local):
        assert not lake.exists("X:BTCUSD", "1d") and lake.read("X:BTCUSD", "1d").empty
        lake.write("X:BTCUSD", "1d", _candles(50))
        lake.append("X:BTCUSD", "1d", _candles(60).iloc[45:], as_of=pd.Timestamp("2024-03-01", tz="UTC"))
        lake.write("X:ETHUSD", "1h", _candles(5))
    pd.testing.assert_frame_equal(remote.read("X:BTCUSD", "1d"), local.read("X:BTCUSD", "1d"))
    assert len(remote.read("X:BTCUSD", "1d")) == 60
    assert list(remote.tickers()) == list(local.tickers()) == ["X:BTCUSD", "X:ETHUSD"]
    assert str(remote.path("X:BTCUSD", "1d")).endswith("cryptocast/lake-a/X_BTCUSD/1d_ohlcv.parquet")
    assert remote.version("X:BTCUSD", "1d") is not None and remote.version("X:BTCUSD", "1w") is None
    since = pd.Timestamp("2024-02-01", tz="UTC")
    kept, fresh = (LakeReads(lake, ["timestamp", "close"]).since("1d", since) for lake in (remote, local))
    assert list(kept) == ["X:BTCUSD"]
    pd.testing.assert_frame_equal(kept["X:BTCUSD"], fresh["X:BTCUSD"])


def test_the_registry_on_an_object_store_verifies_what_it_downloads(s3: str, engine, tmp_path: Path) -> None:
    model_dir = join(s3, f"models-{engine.url.get_backend_name()}")
    registry = ModelRegistry(engine, model_dir, cache_dir=tmp_path / "cache")
    now = pd.Timestamp("2025-01-01", tz="UTC").to_pydatetime()
    info = TrainingInfo(now, now, 3, ["X:BTCUSD"], 10, 0.5, now)

    def write(folder: Path) -> None:
        (folder / "model.ubj").write_bytes(b"\x00booster")
        (folder / "sub").mkdir()
        (folder / "sub" / "rf.skops").write_bytes(b"forest")

    record = registry.register("1d", write, info)
    assert record.model_path.startswith("s3://") and "/1d/v1.0" in record.model_path
    folder = registry.open_artifact(record)
    assert folder.is_relative_to(tmp_path / "cache") and (folder / "sub" / "rf.skops").read_bytes() == b"forest"
    with pytest.raises(ArtifactError, match="never overwritten"):
        registry.register("1d", write, info, version="v1.0")
    remote = Location.of(record.model_path)
    remote.write_bytes(remote.child("model.ubj"), b"\x00tampered")
    with pytest.raises(ArtifactError, match="altered after registration"):
        registry.open_artifact(record)
    remote.write_bytes(remote.child("model.ubj"), b"\x00booster")
    remote.write_bytes(remote.child("extra.py"), b"import os")
    with pytest.raises(ArtifactError, match="differ from the manifest"):
        registry.open_artifact(record)


@pytest.mark.slow
def test_weekly_training_with_lake_checkpoints_and_models_in_the_bucket(s3: str, ray_local, pg_database_url: str,
                                                                       tmp_path: Path, monkeypatch) -> None:
    from jobs import weekly_training
    from serve_app.active_models import ActiveModels
    from storage.db import make_engine
    from tests.conftest import DAILY_DATA

    env = {"MARKET_SOURCE": f"csv:{DAILY_DATA}", "DATA_DIR": join(s3, "job/lake"), "MODEL_DIR": join(s3, "job/models"),
           "DATABASE_URL": pg_database_url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    weekly_training.main(["--top", "6", "--timeframes", "1d", "--as-of", "2024-12-31", "--n-estimators", "20",
                          "--max-depth", "4", "--origins", "60", "--model", "xgboost",
                          "--one-task-below", "0"])  # Ray Train, whose checkpoints go to the bucket
    engine = make_engine(pg_database_url)
    registry = ModelRegistry(engine, env["MODEL_DIR"], cache_dir=tmp_path / "cache")
    active = registry.active("1d")
    assert active is not None and active.model_path.startswith("s3://")
    bucket = Location.of(s3)
    assert bucket.files(bucket.child("job/lake/X_BTCUSDT")) == ["1d_ohlcv.parquet"]
    assert any(f.startswith("checkpoint_") for f in
               {p.split("/")[1] for p in bucket.files(bucket.child("job/models/.ray_train")) if "/" in p})
    models = ActiveModels(registry, ["1d"])
    candles = Lake(env["DATA_DIR"]).read("X:BTCUSDT", "1d")
    answer = models.forecast("1d", candles.iloc[-models.window("1d"):], 30)
    assert answer.model_version == active.version and len(answer.steps) == 30
    engine.dispose()
