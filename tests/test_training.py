"""Training: targets, purged splits, calibration, the forecaster's consistency, evaluation against
naive, champion/challenger, and the jobs end to end (weekly training through `ray job submit`)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from itertools import groupby
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storage.db import make_engine
from storage.lake import Lake
from storage.migrate import upgrade
from storage.registry import ArtifactError, ModelRegistry
from tests import sigma_band
from tests.conftest import BACKTEST_METRICS, MODEL_METRICS
from training.band.market import MARKET_RATES
from training.dataset import PART_CODES, PART_COLUMN, next_candle_targets, time_split, validated_horizon
from training.evaluation import evaluate, insample_naive_mae, sample_stride, select_origins
from training.fitting import fit_candidates
from training.forecaster import Windows
from training.models.recursive_forecaster import RecursiveForecaster
from training.models.xgb_booster import DEFAULT_PARAMS, BoosterSetup
from training.spec import FitSpec
from training.stages import Fitted, StageTimer

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2025, 11, 1, tzinfo=timezone.utc)
SMALL = {**DEFAULT_PARAMS, "n_estimators": 30, "max_depth": 4}


@pytest.fixture(scope="module")
def fitted(binance_lake) -> Fitted:
    root, tickers = binance_lake
    timer = StageTimer("test", echo=lambda _: None)
    spec = FitSpec(root, tickers, "1d", pd.Timestamp("2024-12-31", tz="UTC"), params=SMALL, use_ray=False,
                   calibration_origins=120)
    return fit_candidates(timer, spec, ("xgboost",))


@pytest.fixture(scope="module")
def trained(fitted: Fitted) -> tuple[RecursiveForecaster, dict[str, pd.DataFrame], object]:
    return fitted.candidates["xgboost"], fitted.candles, fitted.split


def test_targets_describe_the_next_candle() -> None:
    candles = pd.DataFrame({"open": [1.0, 2.0, 4.0], "high": [2.0, 3.0, 5.0], "low": [0.5, 1.5, 3.0],
                            "close": [2.0, 2.5, 4.5]})
    t = next_candle_targets(candles)
    assert t["target_ret"].iloc[0] == pytest.approx(np.log(2.5 / 2.0))
    assert t["target_up"].iloc[0] == pytest.approx(np.log(3.0 / 2.5))
    assert t["target_down"].iloc[0] == pytest.approx(np.log(2.0 / 1.5))
    assert t.iloc[-1].isna().all()


@pytest.mark.parametrize("timeframe", ["1h", "1d", "1w"])
def test_split_is_by_time_with_purge_gaps(timeframe: str) -> None:
    first, last = pd.Timestamp("2019-01-01", tz="UTC"), pd.Timestamp("2024-12-31", tz="UTC")
    if timeframe == "1h":
        first = pd.Timestamp("2024-01-01", tz="UTC")
    s = time_split(first, last, timeframe)
    step = {"1h": pd.Timedelta(hours=1), "1d": pd.Timedelta(days=1), "1w": pd.Timedelta(days=7)}[timeframe]
    gap = step * validated_horizon(timeframe)
    assert s.valid_start - s.train_end >= gap * 0.999 and s.holdout_start - s.valid_end >= gap * 0.999
    assert first < s.train_end < s.valid_start < s.valid_end < s.holdout_start < last
    parts = s.part(pd.Series(pd.date_range(first, last, freq="1D")))
    assert [k for k, _ in groupby(parts)] == ["train", "gap", "valid", "gap", "holdout"]  # never interleaved
    # the labels of Ray's rows (`codes`, in whole milliseconds) pick exactly what `rows_of` picks
    hours = pd.DataFrame({"timestamp": pd.date_range(first, last, freq="1h").astype("datetime64[ms, UTC]")})
    codes = s.codes(hours["timestamp"].to_numpy())
    for name, code in PART_CODES.items():
        assert hours[codes == code].equals(s.rows_of(hours, name)), name
    assert hours[codes >= 0].equals(s.rows_of(hours, "refit"))
    with pytest.raises(ValueError, match="too short"):
        time_split(last - pd.Timedelta(days=100), last, "1d")


def test_calibration_shrinks_a_useless_model_to_naive_and_covers_80_percent() -> None:
    rng = np.random.default_rng(0)
    n, h = 4000, 30
    sigma = rng.uniform(0.01, 0.05, n)
    actual = np.cumsum(rng.standard_t(5, (n, h)) * sigma[:, None] * 0.77, axis=1)
    noise = np.cumsum(rng.normal(0, 0.02, (n, h)), axis=1)  # predictions unrelated to outcomes
    cal = sigma_band.fit(noise[:2000], actual[:2000], sigma[:2000])
    assert max(cal.shrink) < 0.15
    lo = np.asarray(cal.band.lo) * sigma[2000:, None] * np.sqrt(np.arange(1, h + 1))
    hi = np.asarray(cal.band.hi) * sigma[2000:, None] * np.sqrt(np.arange(1, h + 1))
    pred = noise[2000:] * np.asarray(cal.shrink)
    covered = ((pred + lo <= actual[2000:]) & (actual[2000:] <= pred + hi)).mean(axis=0)
    assert np.all(np.abs(covered - 0.8) < 0.05)  # on data it never saw
    skilled = actual + rng.normal(0, 0.001, (n, h))
    cal2 = sigma_band.fit(skilled[:2000], actual[:2000], sigma[:2000])
    assert min(cal2.shrink) > 0.9
    from training.calibration import confidence

    conf = confidence(cal, noise[2000:], sigma[2000:])
    assert abs(conf.mean() - 0.5) < 0.05  # no skill, no confidence


def test_forecasts_are_consistent(trained) -> None:
    forecaster, candles, _ = trained
    frame = candles["X:BTCUSDT"]
    answer = forecaster.forecast(frame, steps=30)
    assert len(answer.steps) == 30 and answer.direction == answer.steps[-1].direction
    assert 0 <= answer.confidence_avg <= 1 and len(answer.key_indicators) == 3
    last = frame["timestamp"].iloc[-1]
    previous_close = frame["close"].iloc[-1]
    for i, s in enumerate(answer.steps):
        assert s.timestamp == last + pd.Timedelta(days=i + 1)
        assert s.open == pytest.approx(previous_close)
        assert s.low <= min(s.open, s.close) <= max(s.open, s.close) <= s.high
        assert s.lower <= s.close <= s.upper
        assert 0.5 <= s.confidence <= 1
        moved = np.sign(s.close - frame["close"].iloc[-1])  # the direction is the path's
        assert s.direction == {1: "up", -1: "down", 0: "flat"}[int(moved)]
        assert s.direction != "flat" or s.confidence == 0.5
        previous_close = s.close
    with pytest.raises(ValueError, match="needs 320"):
        forecaster.forecast(frame.iloc[-100:])


def test_a_booster_keeps_only_the_rounds_up_to_its_best() -> None:
    """Early stopping tries EARLY_STOPPING_ROUNDS past the best round; a booster predicts with every
    round it holds, so those must not stay in the model."""
    from training.dataset import TARGETS
    from training.models.xgb_booster import EARLY_STOPPING_ROUNDS, Rows, train_booster

    rng = np.random.default_rng(3)
    features = [f"f{i}" for i in range(5)]
    frame = pd.DataFrame(rng.normal(size=(800, 5)), columns=features).assign(
        **{t: rng.normal(size=800) for t in TARGETS})  # noise: validation stops improving at once
    booster, history = train_booster(Rows.of_frame(frame.iloc[:600], features), Rows.of_frame(frame.iloc[600:], features),
                                     BoosterSetup(features, {**DEFAULT_PARAMS, "n_estimators": 200}, scale=np.ones(3)))
    assert len(history["valid"]["rmse"]) == booster.best_iteration + 1 + EARLY_STOPPING_ROUNDS
    assert booster.num_boosted_rounds() == booster.best_iteration + 1


def test_a_refit_learns_from_validation_too_with_the_trees_and_calibration_validation_chose(fitted: Fitted) -> None:
    forecaster, split = fitted.candidates["xgboost"], fitted.split
    again = fitted.refits["xgboost"]
    assert again.booster.num_boosted_rounds() == forecaster.meta["best_iteration"] + 1
    assert again.calibration is forecaster.calibration  # residuals of data the first fit had not seen
    # the band's market-wide adaptation replays from the end of validation, at the timeframe's step
    assert forecaster.calibration.band.fitted_until == split.valid_end.isoformat()
    assert forecaster.calibration.band.market_rate == MARKET_RATES["1d"] > 0
    assert list(again.target_scale) == list(forecaster.target_scale)  # the same targets, on more rows
    assert again.meta["refit"]["train_end"] == split.valid_end.isoformat()
    # everything before the end of validation: train, the purge gap and validation
    assert again.meta["train_rows"] > forecaster.meta["train_rows"] + forecaster.meta["valid_rows"]
    frame = fitted.candles["X:BTCUSDT"]
    assert again.forecast(frame).steps != forecaster.forecast(frame).steps  # a different model, same interface
    deployed = fitted.deployed("xgboost", forecaster)
    assert deployed.booster is again.booster and deployed.meta["refit"] == again.meta["refit"]


@pytest.mark.parametrize("timeframe", ["1h", "4h"])
def test_intraday_timeframes_deploy_the_first_fit_not_the_refit(fitted: Fitted, timeframe: str) -> None:
    """bench.honesty: refits helped on daily windows, not on 4h and 1h ones (`Timeframe.deploy_refit`);
    the backtest still fits and reports them beside the first fits."""
    import copy

    first, again = (copy.copy(m) for m in (fitted.candidates["xgboost"], fitted.refits["xgboost"]))
    first.timeframe = again.timeframe = timeframe
    intraday = Fitted({"xgboost": first}, fitted.candles, fitted.split, {"xgboost": again})
    assert intraday.deployed("xgboost") is first
    assert fitted.deployed("xgboost").booster is fitted.refits["xgboost"].booster  # 1d: the refit


def test_a_backtest_states_the_band_a_replica_serves_at_the_same_candle(trained) -> None:
    """The market-wide widening of an origin in a backtest (`evaluate(..., market)`) is the one a
    serving replica computes from the same coins' candles up to that origin."""
    from training.band.market import MarketReplay, market_track

    forecaster, candles, split = trained
    cut = split.valid_end + pd.Timedelta(days=60)
    upto = {t: f[f["timestamp"] <= cut] for t, f in candles.items()}
    frames = [f for f in upto.values() if len(f) >= forecaster.window][:3]
    windows = Windows.from_frames(frames, forecaster.window)
    band = forecaster.calibration.band
    replayed = MarketReplay(candles).shift_at(band, windows.stamps[:, -1], 30)  # the backtest has later candles too
    served = market_track(upto, band, 30).last(30)[1]
    assert np.abs(served).max() > 0
    np.testing.assert_allclose(replayed, np.repeat(served[None, :], len(frames), axis=0))
    one = forecaster.forecast(frames[0], shift=served)
    batch = forecaster.predict_windows(windows, 30, replayed)
    assert [s.upper for s in one.steps] == pytest.approx(list(batch.upper[0]))


def test_batch_forecasts_match_single_ones(trained) -> None:
    forecaster, candles, _ = trained
    frames = [candles[t] for t in ("X:BTCUSDT", "X:PEPEUSDT", "X:SOLUSDT")]
    batch = forecaster.predict_windows(Windows.from_frames(frames, forecaster.window), 30)
    for i, frame in enumerate(frames):
        single = forecaster.forecast(frame)
        np.testing.assert_allclose(batch.close[i], [s.close for s in single.steps], rtol=1e-4)


def test_artifact_roundtrip_and_tampering(trained, engine, tmp_path: Path) -> None:
    from storage.registry import TrainingInfo

    forecaster, candles, split = trained
    registry = ModelRegistry(engine, tmp_path / "models")
    info = TrainingInfo(split.train_start.to_pydatetime(), split.train_end.to_pydatetime(), 8, list(candles), 200, 0.5,
                        datetime.now(timezone.utc))
    record = registry.register("1d", forecaster.save, info)
    loaded = RecursiveForecaster.load(registry.open_artifact(record))
    frame = candles["X:ETHUSDT"]
    assert loaded.forecast(frame).steps == forecaster.forecast(frame).steps
    assert not list(Path(record.model_path).glob("*.pkl"))
    (Path(record.model_path) / "forecaster.json").write_text('{"kind": "pickle"}')
    with pytest.raises(ArtifactError):
        registry.open_artifact(record)
    with pytest.raises(ValueError, match="unreadable"):
        RecursiveForecaster.load(Path(record.model_path))


def test_a_sample_of_origins_spans_the_whole_period() -> None:
    stamps = pd.date_range("2024-01-01", periods=300, freq="1D", tz="UTC")
    close = np.linspace(100, 130, 300)
    frames = {f"X:C{k}USD": pd.DataFrame({"timestamp": stamps[k * 50:], "open": close[k * 50:], "high": close[k * 50:],
                                          "low": close[k * 50:], "close": close[k * 50:], "volume": 1.0})
              for k in range(3)}
    start, end = stamps[200], stamps[260]  # [start, end): 60 candles of each symbol
    assert sample_stride(frames, start, end, 45) == 4  # 180 candles, 45 wanted
    assert sample_stride(frames, start, end, 1000) == 1
    origins = select_origins(frames, start, end, 20, stride=4, max_origins=45)
    times = pd.DatetimeIndex(origins.windows.stamps[:, -1])
    assert len(origins) == 45
    assert times.min() <= stamps[203].tz_localize(None) and times.max() >= stamps[256].tz_localize(None)
    assert times.max() < end.tz_localize(None)
    assert len(set(times)) == 45  # the symbols' staggered offsets: no two origins on one day


def test_evaluation_reports_naive_from_the_data(trained) -> None:
    forecaster, candles, split = trained
    origins = select_origins(candles, split.holdout_start, pd.Timestamp("2024-12-31", tz="UTC"), forecaster.window,
                             max_origins=80)
    scale = insample_naive_mae(candles, split.train_end)
    report = evaluate(forecaster, origins, scale)
    naive = report["naive"]["horizons"]
    assert set(naive) == {str(h) for h in range(1, 31)}
    for h in (1, 10, 30):
        assert naive[str(h)]["mae"] == pytest.approx(np.mean(np.abs(origins.actual_close[:, h - 1])), abs=1e-6)
        assert naive[str(h)]["directional_accuracy"] == pytest.approx(
            np.mean(origins.actual_close[:, h - 1][origins.actual_close[:, h - 1] != 0] > 0), abs=1e-4)
        assert set(report["model"]["horizons"][str(h)]) == MODEL_METRICS
    assert naive["1"]["mase"] == pytest.approx(naive["1"]["mae"] / scale, abs=1e-3)


def test_backtest_report_has_the_fixed_shape(binance_lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jobs import backtest

    root, tickers = binance_lake
    from tests.conftest import DAILY_DATA

    monkeypatch.setenv("MARKET_SOURCE", f"csv:{DAILY_DATA}")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    out = tmp_path / "report.json"
    backtest.main(["--timeframe", "1d", "--train-end", "2024-06-30", "--test-end", "2024-12-31", "--top", "6",
                   "--json", str(out), "--no-ray", "--max-origins", "120", "--model", "xgboost"])
    report = json.loads(out.read_text())
    assert {"timeframe", "train_end", "test_end", "n_symbols", "n_forecasts", "models"} <= set(report)
    assert report["timeframe"] == "1d" and report["n_symbols"] == 6 and 0 < report["n_forecasts"] <= 120
    assert set(report["models"]) == {"xgboost", "xgboost_refit", "naive"}  # the first fit beside the deployed refit
    for name, model in report["models"].items():
        assert list(model["horizons"]) == [str(h) for h in range(1, 31)]
        for metrics in model["horizons"].values():
            assert set(metrics) == (BACKTEST_METRICS if name == "naive" else MODEL_METRICS)
            assert metrics["mae"] > 0 and 0 <= metrics["coverage_80"] <= 1
    assert report["origins"]["stride_candles"] >= 1
    # what the weekly job would have had at the train end: the retention before it, no later candle
    history = report["training_history"]
    assert pd.Timestamp(history["start"]) >= pd.Timestamp("2024-06-30", tz="UTC") - pd.Timedelta(days=1825)
    assert pd.Timestamp(history["end"]) < pd.Timestamp("2024-06-30", tz="UTC") and history["candles"] > 6 * 1000
    every = report["band_every_candle"]  # the deployed band on every test candle, against the 20-candle band
    assert set(every) == {"1", "5", "10", "30"}
    for row in every.values():
        assert row["origins"] > report["n_forecasts"] and row["ratio_95"][0] <= row["ratio"] <= row["ratio_95"][1]
        assert len(row["coverage_80_by_volatility"]) == 3 and 0 < row["coverage_80"] < 1
    assert 0 <= every["1"]["independence"]["p_value"] <= 1


def _submit(ray_head: dict[str, str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    runtime_env = json.dumps({"env_vars": env})
    cmd = [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", ray_head["address"],
           "--working-dir", str(ROOT), "--runtime-env-json", runtime_env, "--", "python", "-m", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=ray_head["env"])


@pytest.mark.slow
def test_weekly_training_through_ray_job_submit_on_synthetic_data(ray_head, pg_database_url: str, tmp_path: Path) -> None:
    env = {"MARKET_SOURCE": "synthetic", "DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(tmp_path / "models"),
           "DATABASE_URL": pg_database_url}
    # sizes kept small so the suite stays within its time budget; the full-size run is bench.weekly_training
    args = ["jobs.weekly_training", "--top", "6", "--timeframes", "1d,1w", "--as-of", "2025-10-01",
            "--n-estimators", "20", "--max-depth", "4", "--origins", "50", "--model", "xgboost"]
    proc = _submit(ray_head, env, *args)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    out = proc.stdout
    for stage in ("sync", "rank", "update", "[1d] fit", "[1d] calibrate", "[1d] evaluate", "[1w] register"):
        assert stage in out, out[-4000:]
    assert "(in one Ray task)" in out  # fits this small skip Ray Train's worker group (the binance test uses it)
    assert "Progress bars disabled" not in out + proc.stderr  # Ray's start-up notices are not the job's output
    engine = make_engine(pg_database_url)
    registry = ModelRegistry(engine, tmp_path / "models")
    active = registry.active("1d")
    assert active is not None and active.num_symbols >= 4 and active.feature_count >= 150
    assert (Path(active.model_path) / "metrics.json").exists() and (Path(active.model_path) / "model.ubj").exists()
    assert "refit" in json.loads((Path(active.model_path) / "forecaster.json").read_text())["meta"]  # the refit
    engine.dispose()
    # the run is in the node's Prometheus metrics (the shuffled-targets control, which is registered
    # but never activated, runs in-process in the monthly test)
    import httpx

    scraped = httpx.get(ray_head["metrics"], timeout=30).text
    runs = [line for line in scraped.splitlines() if line.startswith("ray_cryptocast_training_runs_total{")]
    assert any('outcome="activated"' in line and 'timeframe="1d"' in line for line in runs), runs
    assert any('outcome="activated"' in line and 'timeframe="1w"' in line for line in runs), runs
    stages = [line for line in scraped.splitlines() if line.startswith("ray_cryptocast_training_stage_seconds{")]
    # gauges: Ray exports the values an exited driver set in its last report interval (here the last timeframe's)
    assert any('stage="fit"' in line for line in stages), stages
    assert "ray_cryptocast_training_job_seconds{" in scraped


@pytest.mark.slow
def test_weekly_training_on_binance_candles_through_ray_job_submit(ray_head, tmp_path: Path) -> None:
    from tests.conftest import DAILY_DATA

    db = tmp_path / "app.db"
    env = {"MARKET_SOURCE": f"csv:{DAILY_DATA}", "DATA_DIR": str(tmp_path / "data"),
           "MODEL_DIR": str(tmp_path / "models"), "DATABASE_URL": f"sqlite:///{db}"}
    # 1d only (the synthetic test covers 1w) and six coins: the suite's time budget; through Ray Data
    # and Ray Train as a large fit would go (the synthetic test takes the one-task path)
    proc = _submit(ray_head, env, "jobs.weekly_training", "--top", "6", "--timeframes", "1d", "--as-of",
                   "2024-12-31", "--n-estimators", "20", "--max-depth", "4", "--origins", "50", "--model", "xgboost",
                   "--one-task-below", "0")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    assert "(on Ray Train)" in proc.stdout
    upgrade(f"sqlite:///{db}")
    registry = ModelRegistry(make_engine(f"sqlite:///{db}"), tmp_path / "models")
    for tf in ("1d",):
        records = registry.list(tf)
        assert len(records) == 1 and records[0].num_symbols >= 5
        metrics = json.loads((Path(records[0].model_path) / "metrics.json").read_text())
        assert metrics["naive"]["summary"]["mae_mean"] > 0 and metrics["n_origins"] > 0
    assert "as of 2024-12-31" in proc.stdout
    # the ensemble challenges the active recursive model on the same holdout
    ens = _submit(ray_head, env, "jobs.weekly_training", "--top", "6", "--timeframes", "1d", "--as-of", "2024-12-31",
                  "--skip-data", "--model", "ensemble", "--n-estimators", "15", "--epochs", "2", "--origins", "50")
    assert ens.returncode == 0, ens.stdout[-5000:] + ens.stderr[-3000:]
    for stage in ("[1d] rows", "[1d] fit xgb_direct", "[1d] fit rf", "[1d] fit lstm", "[1d] calibrate",
                  "[1d] refit xgb_direct", "[1d] refit rf", "[1d] refit lstm"):  # the refits in Ray tasks
        assert stage in ens.stdout, ens.stdout[-4000:]
    first, new = registry.list("1d")
    deployed = json.loads((Path(new.model_path) / "forecaster.json").read_text())["meta"]
    assert deployed["refit"]["first_fit_train_end"] < deployed["refit"]["train_end"]  # deployed: refitted to valid's end
    metrics = json.loads((Path(new.model_path) / "metrics.json").read_text())
    assert metrics["model_kind"] == "ensemble" and metrics["champion"]["version"] == first.version
    beats = metrics["model"]["summary"]["score"] <= metrics["champion"]["summary"]["score"]
    assert (registry.active("1d").id == new.id) == beats
    assert ("not activated" in ens.stdout) == (not beats)


def test_tune_sweep_saves_the_best_config_for_the_next_training(ray_local, binance_lake, tmp_path: Path) -> None:
    from training.models.xgb_booster import load_tuned_params
    from training.tuning import tune_timeframe

    root, tickers = binance_lake
    assert load_tuned_params(tmp_path, "1d") == DEFAULT_PARAMS
    spec = FitSpec(root, tickers, "1d", pd.Timestamp("2024-12-31", tz="UTC"))
    table, best = tune_timeframe(spec, tmp_path, trials=3, max_trees=20)
    assert len(table) == 3 and table["valid_rmse"].is_monotonic_increasing
    assert best["valid_rmse"] == pytest.approx(table["valid_rmse"].iloc[0])
    saved = load_tuned_params(tmp_path, "1d")
    assert saved == {**DEFAULT_PARAMS, **best["params"]} and saved["n_estimators"] == 20
    assert 3 <= saved["max_depth"] <= 10


def test_monthly_model_is_checked_where_history_allows_and_naive_beyond(tmp_path: Path, monkeypatch, capsys) -> None:
    from jobs import weekly_training
    from training.artifact import load_forecaster
    from training.dataset import validated_horizon

    for key, value in {"MARKET_SOURCE": "synthetic", "DATA_DIR": str(tmp_path / "data"),
                       "MODEL_DIR": str(tmp_path / "models"), "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}.items():
        monkeypatch.setenv(key, value)
    weekly_training.main(["--top", "5", "--timeframes", "1m", "--no-ray", "--as-of", "2025-10-01",
                          "--n-estimators", "20", "--max-depth", "3"])  # no SystemExit
    out = capsys.readouterr().out
    assert "[1m] register" in out and "SKIPPED" not in out
    registry = ModelRegistry(make_engine(f"sqlite:///{tmp_path / 'app.db'}"), tmp_path / "models")
    record = registry.active("1m")
    metrics = json.loads((Path(record.model_path) / "metrics.json").read_text())
    h = validated_horizon("1m")
    assert h < 30 and set(metrics["model"]["horizons"]) == {str(i) for i in range(1, h + 1)}
    forecaster = load_forecaster(registry.open_artifact(record))
    cal = forecaster.calibration
    assert cal.validated_horizon == h and len(cal.shrink) == 30 and set(cal.shrink[h:]) == {0.0}
    candles = Lake(tmp_path / "data").read(record.top_symbols[0], "1m")
    answer = forecaster.forecast(candles.iloc[-forecaster.window:], 30)
    steps = answer.steps
    assert len(steps) == 30 and all(s.confidence == 0.5 for s in steps[h:])  # never checked: a coin flip
    # the last checked forecast is carried forward
    assert all(s.close == steps[h - 1].close and s.direction == steps[h - 1].direction for s in steps[h:])
    widths = [np.log(s.upper / s.lower) for s in steps]
    assert widths[29] > widths[h]  # bands keep widening
    # a model fitted on shuffled targets (a control that can learn nothing) never replaces it
    weekly_training.main(["--top", "5", "--timeframes", "1m", "--no-ray", "--as-of", "2025-10-01", "--skip-data",
                          "--n-estimators", "20", "--max-depth", "3", "--shuffle-targets", "--model", "xgboost"])
    out = capsys.readouterr().out
    assert "not activated" in out and "control fitted on shuffled targets" in out
    assert registry.active("1m").id == record.id and len(registry.list("1m")) == 2
    control = registry.list("1m")[-1]
    assert "refit" not in json.loads((Path(control.model_path) / "forecaster.json").read_text())["meta"]  # no refit


def test_a_failed_train_worker_restarts_and_resumes_from_its_checkpoint(ray_local, tmp_path: Path) -> None:
    import ray

    from engine.layout import Checkpoints, RunOptions
    from engine.progress import reporting
    from training.dataset import TARGETS
    from training.models.xgb_booster import fit_with_ray

    rng = np.random.default_rng(0)
    features = [f"f{i}" for i in range(8)]
    frame = pd.DataFrame(rng.normal(size=(3000, 8)).astype(np.float32), columns=features)
    for target in TARGETS:
        frame[target] = (frame["f0"] * 0.5 + rng.normal(size=3000)).astype(np.float32)
    params = {**DEFAULT_PARAMS, "n_estimators": 40, "max_depth": 3, "learning_rate": 0.05}
    seen: list[tuple[int, int, str]] = []
    with reporting(lambda done, total, unit: seen.append((done, total, unit))):  # a stage of the driver
        frame[PART_COLUMN] = np.where(np.arange(len(frame)) < 2400, PART_CODES["train"], PART_CODES["valid"]).astype(np.int8)
        fit = fit_with_ray(ray.data.from_pandas(frame), BoosterSetup(features, params, scale=np.ones(3)),
                           RunOptions(storage_path=str(tmp_path), max_failures=1),
                           checkpoints=Checkpoints(every=10, fail_once_after=20))
    assert fit.history["resumed_from"] == [20]  # the restarted worker went on from its checkpoint
    assert fit.booster.num_boosted_rounds() == 40
    # the workers' progress reached the driver's stage while the fit ran (the restart takes seconds)
    assert seen and all(unit == "trees" and total == 40 and 0 < done <= 40 for done, total, unit in seen), seen


def test_ray_train_fits_the_same_trees_as_one_process_from_shuffled_arrow_shards(ray_local) -> None:
    """The worker builds its matrix from Arrow blocks in whatever order Ray Data hands them over,
    every part of the split in one labelled dataset; sorted by (symbol, timestamp) it must fit,
    and refit, exactly what the plain loop fits, from the same target scale."""
    import ray

    from engine.layout import RunOptions
    from training.dataset import TARGETS
    from training.models.xgb_booster import fit_local, fit_with_ray, target_scale

    rng = np.random.default_rng(5)
    features = [f"f{i}" for i in range(6)]
    stamps = pd.date_range("2024-01-01", periods=500, freq="D", tz="UTC").astype("datetime64[ms, UTC]")
    frame = pd.concat([pd.DataFrame({"symbol": s, "timestamp": stamps}) for s in ("X:BBB", "X:AAA", "X:CCC")],
                      ignore_index=True)
    x = rng.normal(size=(len(frame), 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan  # gaps, as early indicators have
    frame[features] = x
    for target in TARGETS:
        frame[target] = (np.nan_to_num(frame["f0"]) * 0.3 + rng.normal(size=len(frame))).astype(np.float32)
    day = frame["timestamp"].dt.day_of_year
    frame[PART_COLUMN] = np.select([day <= 300, day <= 330], [PART_CODES["train"], PART_CODES["purge"]],
                                   PART_CODES["valid"]).astype(np.int8)
    train, valid = frame[day <= 300], frame[day > 330]
    params = {**DEFAULT_PARAMS, "n_estimators": 30, "max_depth": 4}  # subsample 0.8: row order matters
    mixed = frame.sample(frac=1.0, random_state=1)
    shuffled = ray.data.from_pandas([mixed.iloc[i::3] for i in range(3)])

    local = fit_local(train, valid, BoosterSetup(features, params), refit_rows=lambda: frame)
    scale = target_scale(mixed[mixed[PART_COLUMN] == PART_CODES["train"]])  # sorted first: any order, one scale
    assert scale.tolist() == local.target_scale
    on_ray = fit_with_ray(shuffled, BoosterSetup(features, params, scale=scale), RunOptions(), refit=True)
    assert on_ray.booster.get_dump() == local.booster.get_dump()
    assert on_ray.refit is not None and local.refit is not None
    assert on_ray.refit.get_dump() == local.refit.get_dump()
    # the control permutes the same sorted targets on both paths
    control = fit_local(train, valid, BoosterSetup(features, params, shuffle_targets=True))
    setup = BoosterSetup(features, params, shuffle_targets=True, scale=scale)
    assert fit_with_ray(shuffled, setup, RunOptions()).booster.get_dump() == control.booster.get_dump()


def test_a_long_stage_shows_its_progress_while_it_runs() -> None:
    from engine.progress import Throttled, report, reporting

    lines: list[str] = []
    report(1, 2, "steps")  # outside a stage: nothing to show, no error
    with reporting(Throttled("[1d] calibrate", lines.append, every_s=0.0)):
        for done in range(1, 5):
            report(done, 4, "steps of 600 recursive forecasts")
    assert lines[0].startswith("[1d] calibrate 1/4 steps of 600 recursive forecasts, ~") and lines[-1].endswith("s left")
    assert len(lines) == 3  # the last step is the stage's own closing line
    shown: list[str] = []
    timer = StageTimer("1d", echo=shown.append)
    timer.run("quick", lambda: report(1, 3, "steps"), lambda _: "done")
    assert shown == [line for line in shown if "left" not in line]  # a short stage prints only its closing line


def test_rays_worker_startup_notice_is_kept_out_of_a_jobs_output() -> None:
    import io
    import threading

    from jobs.cli import WithoutRayNotices

    out = io.StringIO()
    stream = WithoutRayNotices(out)
    notice = ("\x1b[33m(raylet)\x1b[0m WARNING: 10 PYTHON worker processes have been started on node: 870c with "
              "address: 192.0.2.2, which is 5x the maximum expected startup concurrency (2).")
    oom = "\x1b[33m(raylet)\x1b[0m Task was killed due to the node running low on memory."

    def listener() -> None:  # print() writes the line and its newline apart, as Ray's listener does
        for line in (notice, oom, notice):
            print(line, file=stream)

    thread = threading.Thread(target=listener, name="ray_listen_error_messages")
    thread.start()
    thread.join()
    print("[1d] fit  (3.0s)", file=stream)
    print(notice.replace("10", "16"), file=stream)  # a repeat held back by Ray's de-duplication, flushed at exit
    print("[1d] calibrate", end="", file=stream)  # a partial line is not held back
    assert out.getvalue() == f"{oom}\n[1d] fit  (3.0s)\n[1d] calibrate"
    print("\n10 PYTHON worker processes have been started on node: a sentence of the job's own", file=stream)
    assert out.getvalue().endswith("\n10 PYTHON worker processes have been started on node: a sentence of the job's own\n")


def test_the_weekly_job_deploys_a_4h_first_fit_and_fits_no_refit(tmp_path: Path, monkeypatch, capsys) -> None:
    from jobs import weekly_training

    for key, value in {"MARKET_SOURCE": "synthetic", "DATA_DIR": str(tmp_path / "data"),
                       "MODEL_DIR": str(tmp_path / "models"), "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}.items():
        monkeypatch.setenv(key, value)
    weekly_training.main(["--top", "3", "--timeframes", "4h", "--no-ray", "--as-of", "2025-10-01", "--model", "xgboost",
                          "--n-estimators", "5", "--max-depth", "3", "--origins", "40"])
    out = capsys.readouterr().out
    fit_line = next(line for line in out.splitlines() if line.startswith("[4h] fit "))
    assert "refit" not in fit_line, fit_line  # Timeframe.deploy_refit: none fitted where none is deployed
    registry = ModelRegistry(make_engine(f"sqlite:///{tmp_path / 'app.db'}"), tmp_path / "models")
    meta = json.loads((Path(registry.active("4h").model_path) / "forecaster.json").read_text())["meta"]
    assert "refit" not in meta and meta["split"]["train_end"] < meta["split"]["valid_end"]
