"""Direct models and their ensemble: targets, each model's fit, the weighted combination,
calibration on held-out data only, the A/B backtest, safe artifacts, activation and serving."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import torch

from storage.lake import Lake
from storage.registry import ArtifactError, ModelRegistry, TrainingInfo
from tests.conftest import BACKTEST_METRICS, MODEL_METRICS
from training.artifact import load_forecaster
from training.backtest import parse_models, run_backtest
from training.calibration import horizon_scale
from training.candidates import DIRECT, MEMBERS
from training.estimator import TrainingData
from training.evaluation import evaluate, insample_naive_mae, select_origins
from training.fitting import calibrate, fit_candidates
from training.models.direct import variants_of
from training.models.direct_rows import SEQ_LEN, horizon_targets, sequence_features, symbol_direct_rows
from training.models.direct_xgb import ANCHORS, interpolation_matrix
from training.models.ensemble import FIXED_WEIGHTS, fit_weights
from training.models.member import MEMBER_KINDS
from training.spec import FitSpec
from training.stages import Fitted, StageTimer

END = pd.Timestamp("2024-12-31", tz="UTC")
VARIANTS = DIRECT.names
SMALL = {
    "xgb_direct": {"n_estimators": 30, "max_depth": 4, "learning_rate": 0.1, "subsample": 0.8, "colsample_bytree": 0.8},
    "rf": {"n_estimators": 20},
    "lstm": {"epochs": 3, "hidden": 32},
}


@pytest.fixture(scope="module")
def family(binance_lake) -> Fitted:
    root, tickers = binance_lake
    timer = StageTimer("test", echo=lambda _: None)
    return fit_candidates(timer, FitSpec(root, tickers, "1d", END, direct_params=SMALL, use_ray=False,
                                         calibration_origins=150), VARIANTS)


def test_horizon_targets_are_volatility_scaled_cumulative_returns() -> None:
    close = np.array([100.0, 110.0, 99.0, 120.0, 121.0])
    sigma = np.array([0.1, 0.2, 0.1, 0.1, 0.0])
    z = horizon_targets(close, sigma, horizon=3)
    assert z[0, 0] == pytest.approx(np.log(1.1) / 0.1)
    assert z[1, 1] == pytest.approx(np.log(120 / 110) / (0.2 * np.sqrt(2)))
    assert z[0, 2] == pytest.approx(np.log(1.2) / (0.1 * np.sqrt(3)))
    assert np.isnan(z[3, 1]) and np.isnan(z[2, 2]) and np.isnan(z[4]).all()  # unknown future, zero sigma


def test_direct_rows_see_only_the_past(binance_lake) -> None:
    root, _ = binance_lake
    candles = Lake(root).read("X:ETHUSDT", "1d")
    rows = symbol_direct_rows(candles, "X:ETHUSDT", "1d")
    names = sequence_features("1d")
    from features.build import build_features, feature_names

    # an origin's features are the same when every later candle is cut off
    i = len(rows) // 2
    cut = candles[candles["timestamp"] <= pd.Timestamp(rows.timestamp[i], tz="UTC")]
    built = build_features(cut, "1d")
    np.testing.assert_allclose(rows.x[i], built[feature_names("1d")].iloc[-1].to_numpy(np.float32), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(rows.seq[i], built[names].iloc[-SEQ_LEN:].to_numpy(np.float32), rtol=1e-5, atol=1e-6)
    # and its targets are the next 30 closes
    at = cut.index[-1]
    expected = np.log(candles["close"].iloc[at + 1: at + 31].to_numpy() / candles["close"].iloc[at])
    sigma = built[profile_volatility()].iloc[-1]
    np.testing.assert_allclose(rows.y[i] * sigma * np.sqrt(np.arange(1, 31)), expected, rtol=1e-4, atol=1e-6)


def profile_volatility() -> str:
    from features.profiles import profile_for

    return profile_for("1d").volatility_feature


def test_anchor_interpolation_is_exact_at_anchors_and_linear_between() -> None:
    matrix = interpolation_matrix()
    anchors = np.arange(len(ANCHORS), dtype=float) ** 2
    path = anchors @ matrix
    for k, h in enumerate(ANCHORS):
        assert path[h - 1] == pytest.approx(anchors[k])
    assert path[3] == pytest.approx((anchors[2] + anchors[3]) / 2)  # h = 4 halfway between 3 and 5


def test_every_model_trains_and_the_ensemble_combines_them(family) -> None:
    forecasters, candles, split = family.candidates, family.candles, family.split
    assert set(forecasters) == set(VARIANTS)
    ensemble = forecasters["ensemble"]
    assert ensemble.weights == FIXED_WEIGHTS
    assert forecasters["xgb_direct"].members["xgb_direct"].info["best_iteration"] >= 0
    assert forecasters["lstm"].members["lstm"].info["epochs"] >= 1
    fitted = forecasters["ensemble_fitted"].weights
    assert all(w >= 0 for w in fitted.values()) and sum(fitted.values()) == pytest.approx(1.0, abs=1e-5)
    origins = select_origins(candles, split.holdout_start, END, ensemble.window, max_origins=60)
    members = ensemble.member_z(origins.windows)
    expected = sum(FIXED_WEIGHTS[n] * members[n] for n in FIXED_WEIGHTS) * horizon_scale(ensemble.sigma(origins.windows), 30)
    np.testing.assert_allclose(ensemble.raw_return(origins.windows), expected, rtol=1e-9)
    for name in ("xgb_direct", "rf", "lstm"):
        single = forecasters[name].raw_return(origins.windows)
        np.testing.assert_allclose(single, members[name] * horizon_scale(ensemble.sigma(origins.windows), 30), rtol=1e-9)


def test_every_variant_is_refitted_with_what_validation_chose(family) -> None:
    split = family.split
    assert set(family.refits) == set(VARIANTS)
    for name, again in family.refits.items():
        first = family.candidates[name]
        assert again.calibration is first.calibration and again.weights == first.weights, name
        assert again.meta["refit"]["train_end"] == split.valid_end.isoformat()
        # everything before the end of validation: train, the purge gap and validation
        assert again.meta["train_rows"] > first.meta["train_rows"] + first.meta["valid_rows"]
    members, refitted = family.candidates["ensemble"].members, family.refits["ensemble"].members
    assert refitted["xgb_direct"].booster.num_boosted_rounds() == members["xgb_direct"].booster.num_boosted_rounds()
    assert refitted["lstm"].info["refit"]["epochs"] == members["lstm"].info["best_epoch"]
    assert family.refits["lstm"].members["lstm"] is refitted["lstm"]  # each member refitted once, shared
    origins = select_origins(family.candles, split.holdout_start, END, family.refits["ensemble"].window, max_origins=40)
    first_z = family.candidates["ensemble"].member_z(origins.windows)
    again_z = family.refits["ensemble"].member_z(origins.windows)
    for name in FIXED_WEIGHTS:  # more (and more recent) rows: a different model behind the same interface
        assert not np.allclose(first_z[name], again_z[name]), name
    assert family.deployed("ensemble").members is family.refits["ensemble"].members


def test_a_member_refitted_on_its_own_training_rows_is_the_first_fit() -> None:
    """A refit changes the rows, nothing else: the rounds, trees and epochs validation chose, the
    same parameters and seeds, and (for the LSTM) the first fit's input scaling."""
    from engine.layout import RunOptions
    from training.models.direct_rows import DirectRows

    rng = np.random.default_rng(1)
    n, width = 900, 6
    seq = rng.normal(size=(n, SEQ_LEN, width)).astype(np.float32)
    x = seq[:, -1, :]
    y = (np.repeat(x[:, :1] * 0.4, 30, axis=1) + rng.normal(scale=0.5, size=(n, 30))).astype(np.float32)
    rows = DirectRows(np.full(n, "X:A", dtype=object), np.zeros(n, dtype="datetime64[ms]"), x, seq, y)
    train, valid = rows.take(np.arange(n) < 700), rows.take(np.arange(n) >= 700)
    params = {"xgb_direct": {**SMALL["xgb_direct"], "n_estimators": 60}, "rf": {"n_estimators": 10},
              "lstm": {"epochs": 6, "patience": 2, "hidden": 8}}
    local = RunOptions(use_ray=False)
    features = [f"f{i}" for i in range(width)]
    for name, kind in MEMBERS.items():
        first = kind.fit(train, valid, features, params[name], local)
        again = first.refit(train, local)
        np.testing.assert_array_equal(again.predict(valid.x, valid.seq), first.predict(valid.x, valid.seq), err_msg=name)
        assert again.info["refit"]["rows"] == len(train)
        assert not np.array_equal(first.refit(rows, local).predict(valid.x, valid.seq), first.predict(valid.x, valid.seq))


def test_fitted_weights_find_the_informative_member() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(400, 30))
    members = {"lstm": truth + rng.normal(scale=0.3, size=truth.shape), "rf": rng.normal(size=truth.shape),
               "xgb_direct": rng.normal(size=truth.shape)}
    weights = fit_weights(members, truth)
    assert weights["lstm"] > 0.9 and weights["rf"] < 0.05 and weights["xgb_direct"] < 0.05
    assert fit_weights({"rf": -truth, "lstm": -truth}, truth) == {"lstm": 0.4, "rf": 0.2}  # nothing helps: fixed


def test_calibration_sees_validation_data_only(family) -> None:
    forecasters, candles, split = family.candidates, family.candles, family.split
    members = forecasters["ensemble"].members
    # cutting off everything after the validation futures changes nothing
    cut = {s: f[f["timestamp"] < split.valid_end + pd.Timedelta(days=31)].reset_index(drop=True)
           for s, f in candles.items()}
    data = TrainingData(FitSpec("unused", list(cut), "1d", END, calibration_origins=150), cut, split)
    again = variants_of(members, "1d", data.validation_origins(), ("ensemble", "ensemble_fitted"))
    again, _ = calibrate(dict(again), data)
    for name in ("ensemble", "ensemble_fitted"):
        assert again[name].calibration == forecasters[name].calibration
        assert again[name].weights == forecasters[name].weights
    assert forecasters["ensemble"].calibration.n_origins == 150


def test_ensemble_forecasts_are_consistent_and_bands_widen(family) -> None:
    forecasters, candles, split = family.candidates, family.candles, family.split
    ensemble = forecasters["ensemble"]
    origins = select_origins(candles, split.holdout_start, END, ensemble.window, max_origins=80)
    out = ensemble.predict_windows(origins.windows)
    assert (out.low <= np.minimum(out.open, out.close) + 1e-12).all()
    assert (out.high >= np.maximum(out.open, out.close) - 1e-12).all()
    assert (out.lower <= out.close).all() and (out.close <= out.upper).all()
    width = np.log(out.upper / out.lower).mean(axis=0)
    assert width[29] > width[9] > width[0]
    # and with recent volatility: the wildest origins get the widest bands
    calm, wild = np.argsort(out.sigma)[:10], np.argsort(out.sigma)[-10:]
    assert np.log(out.upper / out.lower)[wild, 0].mean() > np.log(out.upper / out.lower)[calm, 0].mean()
    assert ((out.confidence >= 0.5) & (out.confidence <= 1)).all()
    one = ensemble.forecast(candles["X:BTCUSDT"].iloc[-ensemble.window:], steps=7)
    assert len(one.steps) == 7 and one.direction == one.steps[-1].direction
    assert len(one.key_indicators) == 3


def test_evaluation_of_the_ensemble_reports_naive_alike(family) -> None:
    forecasters, candles, split = family.candidates, family.candles, family.split
    origins = select_origins(candles, split.holdout_start, END, forecasters["ensemble"].window, max_origins=80)
    report = evaluate(forecasters["ensemble"], origins, insample_naive_mae(candles, split.train_end))
    assert set(report["model"]["horizons"]) == {str(h) for h in range(1, 31)}
    assert report["naive"]["horizons"]["1"]["mae"] == pytest.approx(np.abs(origins.actual_close[:, 0]).mean(), abs=1e-6)
    # every step that calls a direction is in the reliability table; flat steps call none
    called = int((forecasters["ensemble"].predict_windows(origins.windows).direction != 0).sum())
    assert sum(row["n"] for row in report["model"]["reliability"]) == called


def _register(engine, tmp_path: Path, forecaster) -> tuple[ModelRegistry, object]:
    registry = ModelRegistry(engine, tmp_path / "models")
    now = datetime.now(timezone.utc)
    info = TrainingInfo(now, now, 8, ["X:BTCUSDT"], len(forecaster.features), 0.5, now)
    return registry, registry.register("1d", forecaster.save, info)


def test_ensemble_artifact_roundtrip_and_refusals(family, engine, tmp_path: Path) -> None:
    forecasters, candles = family.candidates, family.candles
    ensemble = forecasters["ensemble"]
    registry, record = _register(engine, tmp_path, ensemble)
    folder = Path(record.model_path)
    assert {p.name for p in folder.rglob("*") if p.is_file()} >= {"forecaster.json", "xgb_direct.ubj", "rf.skops",
                                                                   "lstm.pt", "manifest.json"}
    loaded = load_forecaster(registry.open_artifact(record))
    window = candles["X:SOLUSDT"].iloc[-ensemble.window:]
    assert loaded.forecast(window) == ensemble.forecast(window)
    # a file changed after registration is refused before any loader reads it
    (folder / "lstm" / "lstm.json").write_text((folder / "lstm" / "lstm.json").read_text() + " ")
    with pytest.raises(ArtifactError, match="altered"):
        registry.open_artifact(record)


class Smuggled:
    """Stands for any object a pickle-based format would happily rebuild."""

    def __init__(self) -> None:
        self.payload = "rm -rf /"


def test_member_files_with_unexpected_content_are_refused(family, tmp_path: Path) -> None:
    forecasters = family.candidates
    ensemble = forecasters["ensemble"]
    ensemble.save(tmp_path / "ok")
    # a random-forest file holding another type
    bad = tmp_path / "bad_rf"
    ensemble.save(bad)
    sio.dump({"model": Smuggled()}, bad / "rf" / "rf.skops")
    with pytest.raises(ValueError, match="refusing to load"):
        load_forecaster(bad)
    # an LSTM file that is a pickle of an object, not a state_dict
    bad = tmp_path / "bad_lstm"
    ensemble.save(bad)
    torch.save({"weights": Smuggled()}, bad / "lstm" / "lstm.pt")
    with pytest.raises(ValueError, match="not a plain state_dict"):
        load_forecaster(bad)
    # an unknown member name
    bad = tmp_path / "bad_member"
    ensemble.save(bad)
    meta = json.loads((bad / "forecaster.json").read_text())
    meta["weights"]["prophet"] = 0.1
    (bad / "forecaster.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unknown member models"):
        load_forecaster(bad)
    assert load_forecaster(tmp_path / "ok").weights == FIXED_WEIGHTS


def test_backtest_ab_reports_every_model_beside_naive(binance_lake) -> None:
    root, tickers = binance_lake
    assert parse_models("all") == ["auto", "xgboost", *VARIANTS]
    with pytest.raises(ValueError, match="unknown model"):
        parse_models("xgboost,prophet")
    small_xgb = {"n_estimators": 30, "max_depth": 4, "learning_rate": 0.1, "subsample": 0.8, "colsample_bytree": 0.8}
    spec = FitSpec(root, tickers, "1d", pd.Timestamp("2024-06-30", tz="UTC"), params=small_xgb, direct_params=SMALL,
                   use_ray=False, calibration_origins=120)
    report = run_backtest(spec, datetime(2024, 12, 31, tzinfo=timezone.utc), "all", echo=lambda _: None)
    every = [m for name in ("xgboost", *VARIANTS) for m in (name, f"{name}_refit")]  # each first fit, then its refit
    assert list(report["models"]) == [*every, "auto", "naive"]
    # auto: the candidate that won on validation (naive included), reported beside every candidate
    choice = report["choice"]
    assert set(choice["validation_mae_vs_naive"]) == {"xgboost", *VARIANTS, "naive"}
    assert choice["chosen"] in choice["validation_mae_vs_naive"]
    if choice["chosen"] != "naive":  # the chosen model is deployed refitted on train + validation
        assert report["summary"]["auto"] == report["summary"][f"{choice['chosen']}_refit"]
    for name, model in report["models"].items():
        assert set(model["horizons"]) == {str(h) for h in range(1, 31)}, name
        assert set(model["horizons"]["30"]) == (BACKTEST_METRICS if name == "naive" else MODEL_METRICS)
    assert set(report["reliability"]) == {*every, "auto"}
    assert report["weights"]["ensemble"] == FIXED_WEIGHTS
    # the same origins for everyone: naive is computed once from the test candles, not assumed
    assert report["summary"]["naive"]["mae_mean"] > 0 and report["n_forecasts"] > 0
    json.dumps(report)


def test_serving_answers_from_an_active_ensemble(family, pg_database_url: str, tmp_path: Path) -> None:
    from serve_app.active_models import ActiveModels
    from storage.db import make_engine
    from storage.migrate import upgrade

    forecasters, candles, _ = family.candidates, family.candles, family.split
    upgrade(pg_database_url)
    engine = make_engine(pg_database_url)
    registry, record = _register(engine, tmp_path, forecasters["ensemble"])
    registry.activate(record.id)
    models = ActiveModels(registry, ["1d"])
    answer = models.forecast("1d", candles["X:ETHUSDT"].iloc[-models.window("1d"):], 30)
    assert answer.model_version == record.version and answer.model_id == str(record.id) and len(answer.steps) == 30
    engine.dispose()


def test_a_failed_lstm_worker_restarts_and_resumes_from_its_checkpoint(ray_local, tmp_path: Path) -> None:
    from engine.layout import Checkpoints, RunOptions
    from training.models.direct_rows import DirectRows
    from training.models.lstm import LSTMDirect

    rng = np.random.default_rng(0)
    seq = rng.normal(size=(1200, SEQ_LEN, 5)).astype(np.float32)
    y = np.repeat(seq[:, -1, :1] * 0.5, 30, axis=1) + rng.normal(scale=0.5, size=(1200, 30)).astype(np.float32)
    rows = DirectRows(np.full(1200, "X:A", dtype=object), np.zeros(1200, dtype="datetime64[ms]"),
                      np.zeros((1200, 3), np.float32), seq, y.astype(np.float32))
    train, valid = rows.take(np.arange(1200) < 1000), rows.take(np.arange(1200) >= 1000)
    model = LSTMDirect.fit(train, valid, [f"s{i}" for i in range(5)], {"epochs": 4, "patience": 10, "hidden": 8},
                           RunOptions(use_ray=True, storage_path=str(tmp_path), max_failures=1),
                           Checkpoints(every=1, fail_once_after=2))
    assert model.info["resumed_from"] == 2 and model.info["epochs"] == 4  # went on from its checkpoint
    assert model.predict(valid.x, valid.seq).shape == (200, 30)


def test_every_direct_model_trains_on_the_synthetic_market(tmp_path: Path) -> None:
    from market_data.synthetic import SyntheticMarket
    from market_data.update import update_pair

    now = datetime(2025, 10, 1, tzinfo=timezone.utc)
    market = SyntheticMarket(seed=5, n_coins=20, now=now)
    tickers = [t.ticker for t in market.list_tickers()[:5]]
    for ticker in tickers:
        update_pair(Lake(tmp_path), market, ticker, "1d", now)
    timer = StageTimer("synthetic", echo=lambda _: None)
    fitted = fit_candidates(timer, FitSpec(tmp_path, tickers, "1d", pd.Timestamp(now), direct_params=SMALL,
                                           use_ray=False, calibration_origins=100), VARIANTS)
    forecasters, candles, split = fitted.candidates, fitted.candles, fitted.split
    origins = select_origins(candles, split.holdout_start, pd.Timestamp(now), forecasters["ensemble"].window,
                             max_origins=60)
    scale = insample_naive_mae(candles, split.train_end)
    for name in VARIANTS:
        report = evaluate(forecasters[name], origins, scale)
        # a random walk: calibration must keep every model close to naive, never far worse
        assert report["model"]["summary"]["mae_mean"] <= 1.05 * report["naive"]["summary"]["mae_mean"], name


class MeanDirect:
    """A direct model as small as one can be: each horizon's mean z on the train rows. What a new
    model must offer to be a candidate, an ensemble member and an artifact (`Member`)."""

    name = "mean"
    default_params: dict = {}

    def __init__(self, z: np.ndarray, info: dict | None = None) -> None:
        self.z, self.info = np.asarray(z, dtype=np.float64), dict(info or {})

    @classmethod
    def input_features(cls, timeframe: str) -> list[str]:
        from features.build import feature_names

        return feature_names(timeframe)

    @classmethod
    def fit(cls, train, valid, features, params, run) -> MeanDirect:
        return cls(train.y.mean(axis=0), {"rows": len(train)})

    def refit(self, rows, run) -> MeanDirect:
        return MeanDirect(rows.y.mean(axis=0), {"rows": len(rows), "refit": {"rows": len(rows)}})

    def predict(self, x: np.ndarray, seq: np.ndarray) -> np.ndarray:
        return np.tile(self.z, (len(x), 1))

    def summary(self) -> str:
        return "the train rows' mean z"

    def save(self, folder: Path) -> None:
        (folder / "mean.json").write_text(json.dumps({"z": self.z.tolist(), "info": self.info}))

    @classmethod
    def load(cls, folder: Path) -> MeanDirect:
        saved = json.loads((folder / "mean.json").read_text())
        return cls(saved["z"], saved["info"])


def test_a_new_direct_model_is_one_module_and_one_registry_line(binance_lake, monkeypatch, tmp_path) -> None:
    """docs/architecture.md's promise: the registry line alone makes a model a candidate of the
    loop, a `--model` name, a member of the fitted ensemble and a loadable artifact."""
    from training.candidates import model_names

    monkeypatch.setitem(MEMBER_KINDS, "mean", "tests.test_ensemble:MeanDirect")  # the one registry line
    assert "mean" in model_names() and "mean" in parse_models("all")
    root, tickers = binance_lake
    spec = FitSpec(root, tickers, "1d", END, direct_params=SMALL, use_ray=False, calibration_origins=100)
    fitted = fit_candidates(StageTimer("test", echo=lambda _: None), spec, ("mean",))
    model = fitted.candidates["mean"]
    assert model.calibration.n_origins == 100 and fitted.refits["mean"].calibration == model.calibration
    model.save(tmp_path / "mean")
    loaded = load_forecaster(tmp_path / "mean")
    frame = fitted.candles[tickers[0]]
    assert loaded.forecast(frame).steps == model.forecast(frame).steps
