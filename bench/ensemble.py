"""A/B of every model on the same real candles: fit time, backtest metrics per model against
naive, and a reliability diagram of the confidence (PNG).

    .venv/bin/python -m bench.ensemble [--top 34] [--train-end 2024-06-30] [--test-end 2024-12-31]

Runs `jobs.backtest --model all` on the daily Binance candles of ../shared/data (a local Ray, a
throwaway SQLite database and lake), so the recursive XGBoost, the three direct models and both
ensembles are fitted on the same split, calibrated on the same validation origins and scored on
the same test origins; naive is the baseline every figure stands beside.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench.measure import run_measured

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "binance_daily"
PNG = ROOT / "bench" / "results" / "ensemble_reliability.png"
MEMBERS = {"xgb_direct", "rf", "lstm"}


def fit_seconds(seconds: dict[str, float], model: str) -> float:
    """Seconds spent fitting `model` (the ensembles: all three members)."""
    if model == "xgboost":
        return seconds.get("fit", 0.0)
    names = MEMBERS if model.startswith("ensemble") else {model}
    return sum(seconds.get(f"fit {n}", 0.0) for n in names)


def reliability_png(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot([0.5, 1.0], [0.5, 1.0], color="grey", linestyle="--", label="perfectly calibrated")
    for name, rows in report["reliability"].items():
        ax.plot([r["predicted"] for r in rows], [r["observed"] for r in rows], marker="o", label=name)
    ax.set_xlabel("predicted confidence (equal-count bins)")
    ax.set_ylabel("observed share of right directions")
    ax.set_title(f"{report['timeframe']} test {report['train_end'][:10]} to {report['test_end'][:10]}, "
                 f"{report['n_forecasts']} forecasts x 30 steps", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--top", type=int, default=34)
    parser.add_argument("--train-end", default="2024-06-30")
    parser.add_argument("--test-end", default="2024-12-31")
    parser.add_argument("--max-origins", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"MARKET_SOURCE": f"csv:{DATA}", "DATA_DIR": f"{tmp}/data", "MODEL_DIR": f"{tmp}/models",
               "DATABASE_URL": f"sqlite:///{tmp}/app.db"}
        out = Path(tmp) / "report.json"
        run = run_measured("backtest --model all", [
            sys.executable, "-m", "jobs.backtest", "--timeframe", "1d", "--train-end", args.train_end,
            "--test-end", args.test_end, "--top", str(args.top), "--model", "all", "--max-origins",
            str(args.max_origins), "--json", str(out)], env)
        if run.returncode != 0:
            raise SystemExit(run.output[-4000:])
        report = json.loads(out.read_text())
    print(f"backtest 1d, train to {args.train_end}, test to {args.test_end}: {report['n_symbols']} symbols, "
          f"{report['n_forecasts']} forecasts ({report['origins']['note']})")
    print(f"whole run: {run.seconds:.0f} s wall, {run.peak_rss_mib:.0f} MiB peak (Ray workers included)\n")
    print(f"{'model':<16} {'fit s':>7} {'MAE h1':>9} {'MAE h10':>9} {'MAE h30':>9} {'MASE':>7} {'dir acc':>8} "
          f"{'cover80':>8} {'score':>9}")
    for name, model in report["models"].items():
        h, s = model["horizons"], report["summary"][name]
        fit = "-" if name == "naive" else f"{fit_seconds(report['seconds'], name):.1f}"
        print(f"{name:<16} {fit:>7} {h['1']['mae']:>9.5f} {h['10']['mae']:>9.5f} {h['30']['mae']:>9.5f} "
              f"{s['mase_mean']:>7.3f} {s['directional_accuracy_mean']:>8.3f} {s['coverage_80_mean']:>8.3f} "
              f"{s['score']:>9.5f}")
    print(f"\nweights: {report['weights']}")
    naive = report["summary"]["naive"]["mae_mean"]
    for name in report["models"]:
        if name != "naive":
            delta = report["summary"][name]["mae_mean"] / naive - 1
            print(f"{name:<16} close MAE vs naive: {delta:+.2%}")
    reliability_png(report, PNG)
    print(f"\nreliability diagram: {PNG.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
