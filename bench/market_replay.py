"""A serving replica's market-wide band refresh (`ActiveModels.track_market`, every 5 minutes):
carrying its last track on over a new candle, against replaying from the end of validation.

    .venv/bin/python -m bench.market_replay [--coins 500] [--days 80]

A lake of `--coins` synthetic coins of 1h candles (a year, the 1h retention), a model whose
validation ended `--days` before the lake's end (the 1h holdout is a fifth of the year, and a
model serves for up to a week after it), one refresh with one new candle per coin. Printed: the
seconds of the lake read, of the replay from the end of validation (the baseline: what each
refresh did before) and of the carried-on track, and that both state the same widening; then a
refresh with the lake unchanged since the last (11 of an hourly lake's 12 refreshes an hour),
whose files are not read again (`storage.lake_reads`), against its plain read of every file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd

from market_data.timeframes import HORIZON
from serve_app.active_models import ActiveModels
from storage.lake import Lake
from storage.lake_reads import LakeReads
from training.band.band import Band
from training.band.market import market_rate, market_track, replay_since
from training.band.scale import ROLLING, BandScale
from training.calibration import Calibration
from training.forecaster import ForecastModel

EDGE = 1.2816  # the 80 % band of a random walk in its own scale


def market(coins: int, end: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """A year of 1h random-walk candles per coin, to `end`."""
    rng = np.random.default_rng(1)
    stamps = pd.date_range(end=end, periods=365 * 24, freq="1h", tz="UTC")
    frames = {}
    for k in range(coins):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(stamps))))
        frames[f"X:C{k}USD"] = pd.DataFrame({"timestamp": stamps, "open": close, "high": close * 1.005,
                                             "low": close * 0.995, "close": close, "volume": 1.0})
    return frames


def timed(run):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    out = run()
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coins", type=int, default=500)
    parser.add_argument("--days", type=int, default=80)
    args = parser.parse_args()
    end = pd.Timestamp("2026-12-01", tz="UTC")
    edges = (-EDGE,) * HORIZON, (EDGE,) * HORIZON
    band = Band(BandScale(ROLLING, 20), *edges, *edges, market_rate("1h"), (end - pd.Timedelta(days=args.days)).isoformat())
    forecaster = ForecastModel("1h", [], Calibration([0.0] * HORIZON, [0.0] * HORIZON, [0.0] * HORIZON, 100, band))
    with tempfile.TemporaryDirectory() as folder:
        lake = Lake(folder)
        frames = market(args.coins, end)
        for ticker, frame in frames.items():
            lake.write(ticker, "1h", frame.iloc[:-1])
        models = ActiveModels(SimpleNamespace(active=lambda tf: None), ["1h"])  # type: ignore[arg-type]
        models._models["1h"] = (SimpleNamespace(id=1, version="bench"), forecaster)  # type: ignore[assignment]
        models.track_market(lake, end)  # the track a replica holds before the new candle
        for ticker, frame in frames.items():  # every coin one candle newer
            lake.write(ticker, "1h", frame)
        since = replay_since(pd.Timestamp(band.fitted_until), band, pd.Timedelta(hours=1))
        candles, read_s = timed(lambda: LakeReads(lake, ["timestamp", "close"]).since("1h", since))
        whole, whole_s = timed(lambda: market_track(candles, band, HORIZON))
        _, carried_s = timed(lambda: models.track_market(lake, end))
        _, unchanged_s = timed(lambda: models.track_market(lake, end))
        _, reread_s = timed(lambda: LakeReads(lake, ["timestamp", "close"]).since("1h", since))
    served = models.market_shift("1h")
    same = served is not None and np.allclose(served, whole.last(HORIZON)[1], atol=1e-9)
    print(f"{args.coins} coins of 1h candles, validation ended {args.days} days before the lake's end "
          f"({len(whole.times)} candles to replay)")
    print(f"lake read from the end of validation: {read_s:.2f} s")
    print(f"replay from the end of validation (baseline): {whole_s:.2f} s (+ the read: {read_s + whole_s:.2f} s)")
    print(f"the replica's refresh, its track carried on (read included): {carried_s:.2f} s")
    print(f"a refresh with the lake unchanged: {unchanged_s:.2f} s (every file read again: {reread_s:.2f} s)")
    print(f"same widening: {same}")
    if not same:
        raise SystemExit("the carried-on track states another widening than the whole replay")


if __name__ == "__main__":
    main()
