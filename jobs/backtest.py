"""`python -m jobs.backtest`: train on candles up to --train-end, forecast walk-forward to
--test-end, and write the model-against-naive report as JSON (DESIGN.md's shape).

The lake is filled from MARKET_SOURCE where it lacks candles. Forecast origins are spaced
--stride candles apart (by default so that at most --max-origins forecasts run); the report says
which spacing was used.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jobs.cli import init_ray, parse_as_of, parser, setup
from market_data.factory import make_source
from market_data.universe import rank_symbols, sync_symbols, top_symbols
from market_data.update import update_local, update_with_ray
from training.backtest import MODELS, run_backtest
from training.xgb_train import load_tuned_params


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--timeframe", required=True, choices=["1h", "4h", "1d", "1w", "1m"])
    p.add_argument("--train-end", type=parse_as_of, required=True)
    p.add_argument("--test-end", type=parse_as_of, required=True)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--model", default="xgboost", choices=sorted(MODELS))
    p.add_argument("--json", type=Path, required=True, help="where to write the report")
    p.add_argument("--stride", type=int, help="candles between forecast origins (default: fit --max-origins)")
    p.add_argument("--max-origins", type=int, default=600)
    p.add_argument("--no-ray", action="store_true")
    args = p.parse_args(argv)
    if args.test_end <= args.train_end:
        sys.exit(f"backtest: --test-end {args.test_end:%Y-%m-%d} must be after --train-end {args.train_end:%Y-%m-%d}")
    settings, engine = setup()
    use_ray = not args.no_ray
    if use_ray:
        init_ray()
    source = make_source(settings)
    if not top_symbols(engine, args.top):
        sync_symbols(engine, source)
        rank_symbols(engine, source, args.train_end)
    tickers = top_symbols(engine, args.top)
    update = update_with_ray if use_ray else update_local
    results = update(settings, tickers, [args.timeframe], args.test_end)
    failed = [r for r in results if r.status == "failed"]
    print(f"backtest: lake filled for {len(tickers)} symbols ({len(failed)} failed)")
    report = run_backtest(settings.data_dir, tickers, args.timeframe, args.train_end, args.test_end, args.model,
                          load_tuned_params(settings.model_dir, args.timeframe), use_ray=use_ray, stride=args.stride,
                          max_origins=args.max_origins,
                          storage_path=str(Path(settings.model_dir) / ".ray_train"))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"backtest: {report['n_forecasts']} forecasts of {report['n_symbols']} symbols, report in {args.json}")
    header = f"{'h':>3} " + " ".join(f"{name + ' MAE':>16} {name + ' dir':>10} {name + ' cov':>10}" for name in report["models"])
    print(header)
    for h in ("1", "5", "10", "20", "30"):
        cells = []
        for name, model in report["models"].items():
            m = model["horizons"][h]
            cells.append(f"{m['mae']:>16.5f} {m['directional_accuracy']:>10.3f} {m['coverage_80']:>10.3f}")
        print(f"{h:>3} " + " ".join(cells))


if __name__ == "__main__":
    main()
