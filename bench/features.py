"""Benchmark the feature pipeline: 500 synthetic symbols x one year of 1h candles through the
Ray Data pipeline, against a plain loop calling the same function, in the same run (rows per
second and peak memory); then one incremental computation for serving (a 320-candle window).

    .venv/bin/python -m bench.features [--symbols 500]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

NOW = datetime(2025, 10, 1, tzinfo=timezone.utc)


def fill_lake(root: Path, symbols: int) -> list[str]:
    from market_data.synthetic import SyntheticMarket
    from storage.lake import Lake

    market = SyntheticMarket(seed=7, n_coins=symbols, now=NOW)
    lake = Lake(root)
    tickers = []
    for info in market.list_tickers()[:symbols]:
        candles = market.aggregates(info.ticker, "1h", datetime(2024, 10, 1, tzinfo=timezone.utc), NOW)
        if len(candles) > 400:
            lake.write(info.ticker, "1h", candles)
            tickers.append(info.ticker)
    return tickers


def run_plain(root: str, out: str, tickers: list[str]) -> int:
    from features.pipeline import symbol_features
    from storage.lake import Lake

    lake = Lake(root)
    rows = 0
    Path(out).mkdir(parents=True)
    for i, ticker in enumerate(tickers):
        frame = symbol_features(lake, ticker, "1h")
        frame.to_parquet(Path(out) / f"part-{i:05d}.parquet")
        rows += len(frame)
    return rows


def run_ray(root: str, out: str, tickers: list[str]) -> int:
    import ray

    from features.pipeline import write_feature_table

    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    return write_feature_table(root, tickers, "1h", out)


def incremental_ms(root: str, ticker: str, repeats: int = 200) -> tuple[float, float]:
    from features.build import build_features, latest_features
    from features.profiles import profile_for
    from storage.lake import Lake

    candles = Lake(root).read(ticker, "1h")
    window = candles.iloc[-profile_for("1h").serving_window:]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        latest_features(window, "1h")
        times.append((time.perf_counter() - started) * 1000)
    full = []
    for _ in range(5):
        started = time.perf_counter()
        build_features(candles, "1h")
        full.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), statistics.median(full)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "LAKE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, root, out = args.worker
        tickers = Path(root, "tickers.txt").read_text().split()
        started = time.perf_counter()
        rows = (run_ray if mode == "ray" else run_plain)(root, out, tickers)
        print(f"ROWS {rows} SECONDS {time.perf_counter() - started:.2f}")
        return

    from bench.measure import run_measured

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        started = time.perf_counter()
        tickers = fill_lake(root, args.symbols)
        (root / "tickers.txt").write_text("\n".join(tickers))
        print(f"lake: {len(tickers)} symbols of 1h candles written in {time.perf_counter() - started:.0f}s", flush=True)
        results = []
        for mode in ("ray", "plain"):
            m = run_measured(mode, [sys.executable, "-m", "bench.features", "--worker", mode, str(root),
                                    str(Path(tmp) / f"out_{mode}")])
            line = [ln for ln in m.output.splitlines() if ln.startswith("ROWS")]
            if m.returncode != 0 or not line:
                raise SystemExit(f"{mode} run failed:\n{m.output[-3000:]}")
            rows, seconds = int(line[0].split()[1]), float(line[0].split()[3])
            results.append((mode, rows, seconds, m.seconds, m.peak_rss_mib))
        inc, full = incremental_ms(str(root), tickers[0])
    print(f"\nfeatures, {len(tickers)} synthetic symbols x 1 year of 1h candles (warm-up rows dropped)")
    print(f"{'run':<22} {'rows':>10} {'compute s':>10} {'rows/s':>10} {'process s':>10} {'peak MiB':>9}")
    for mode, rows, seconds, wall, peak in results:
        label = "Ray Data pipeline" if mode == "ray" else "plain loop"
        print(f"{label:<22} {rows:>10} {seconds:>10.1f} {rows / seconds:>10.0f} {wall:>10.1f} {peak:>9.0f}")
    print(f"\nincremental (serving): latest_features on a 320-candle window: {inc:.2f} ms median "
          f"(full 1-year history for comparison: {full:.1f} ms)")


if __name__ == "__main__":
    main()
