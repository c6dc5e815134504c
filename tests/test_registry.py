"""The model registry: safe artifacts, versions, one active model per timeframe, tamper refusal."""

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from storage.registry import ArtifactError, ModelRegistry, TrainingInfo

INFO = TrainingInfo(
    training_start=datetime(2020, 1, 1, tzinfo=timezone.utc), training_end=datetime(2024, 12, 31),
    num_symbols=2, top_symbols=["X:BTCUSD", "X:ETHUSD"], feature_count=4, accuracy_avg=0.51234,
    trained_at=datetime(2025, 1, 1, tzinfo=timezone.utc),
)


def _booster() -> xgb.Booster:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = x[:, 0] * 2 + rng.normal(scale=0.1, size=200)
    return xgb.train({"tree_method": "hist", "max_depth": 3}, xgb.DMatrix(x, y), num_boost_round=10)


def test_register_load_and_activate(engine, tmp_path: Path) -> None:
    registry = ModelRegistry(engine, tmp_path / "models")
    booster = _booster()
    first = registry.register("1d", lambda d: booster.save_model(d / "model.ubj"), INFO)
    assert first.version == "v1.0" and first.is_active is False
    assert Path(first.model_path) == tmp_path / "models" / "1d" / "v1.0"
    assert registry.active("1d") is None

    loaded = xgb.Booster()
    loaded.load_model(registry.open_artifact(first) / "model.ubj")
    x = xgb.DMatrix(np.ones((3, 4), dtype=np.float32))
    np.testing.assert_array_equal(loaded.predict(x), booster.predict(x))

    second = registry.register("1d", lambda d: booster.save_model(d / "model.ubj"), INFO)
    assert second.version == "v2.0"
    registry.activate(first.id)
    assert registry.active("1d").id == first.id
    registry.activate(second.id)  # the switch happens in one transaction
    assert registry.active("1d").id == second.id
    assert [m.is_active for m in registry.list("1d")] == [False, True]
    row = registry.get(second.id)
    assert row.top_symbols == ["X:BTCUSD", "X:ETHUSD"] and float(row.accuracy_avg) == pytest.approx(0.5123)
    assert row.trained_at == datetime(2025, 1, 1)  # naive UTC
    with pytest.raises(LookupError):
        registry.activate("00000000-0000-0000-0000-000000000000")


def test_failed_artifact_writer_leaves_nothing(engine, tmp_path: Path) -> None:
    registry = ModelRegistry(engine, tmp_path / "models")

    def broken(_: Path) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        registry.register("1h", broken, INFO)
    assert registry.list() == []
    assert list((tmp_path / "models" / "1h").iterdir()) == []


def test_tampered_artifact_is_refused(engine, tmp_path: Path) -> None:
    registry = ModelRegistry(engine, tmp_path / "models")
    booster = _booster()
    record = registry.register("4h", lambda d: booster.save_model(d / "model.ubj"), INFO)
    (Path(record.model_path) / "model.ubj").write_bytes(b"{}")
    with pytest.raises(ArtifactError, match="altered"):
        registry.open_artifact(record)
    (Path(record.model_path) / "extra.pkl").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="differ from the manifest"):
        registry.open_artifact(record)
