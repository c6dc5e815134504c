"""`python -m jobs.backtest`: train on candles up to --train-end, forecast walk-forward to
--test-end, and write the model-against-naive report as JSON (its shape is in README.md).

`--model all` is the A/B: naive, the recursive XGBoost, each direct model (xgb_direct, rf, lstm)
and the ensembles (40/40/20 and validation-fitted weights) side by side on the same origins.

The lake is filled from MARKET_SOURCE where it lacks candles: up to --test-end, and before
--train-end each timeframe's retention, what the weekly job's lake held at --train-end; the fit
learns from exactly that (`training.dataset.training_candles`), as the weekly job's would have,
and the report's `training_history` says what it was. Forecast origins are spaced
--stride candles apart (by default so that at most --max-origins forecasts run); the report says
which spacing was used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.ingest import update_with_ray
from jobs.cli import add_model_options, init_ray, model_params, parse_as_of, parser, positive_int, setup
from market_data.factory import make_source
from market_data.source import utc
from market_data.timeframes import TIMEFRAMES
from market_data.universe import rank_symbols, sync_symbols, top_symbols
from market_data.update import update_local
from storage.location import join
from training.backtest import parse_models, run_backtest
from training.candidates import model_names
from training.models.xgb_booster import load_tuned_params
from training.spec import FitSpec


def _models(value: str) -> str:
    try:
        parse_models(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--timeframe", required=True, choices=TIMEFRAMES)
    p.add_argument("--train-end", type=parse_as_of, required=True)
    p.add_argument("--test-end", type=parse_as_of, required=True)
    p.add_argument("--top", type=positive_int, default=20)
    p.add_argument("--model", default="auto", type=_models,
                   help=f"a model, a comma-separated list, or all: {', '.join(model_names())} (default auto: what the "
                        "weekly job would deploy, reported beside every candidate)")
    p.add_argument("--json", type=Path, required=True, help="where to write the report")
    p.add_argument("--stride", type=positive_int, help="candles between forecast origins (default: fit --max-origins)")
    p.add_argument("--max-origins", type=positive_int, default=600)
    p.add_argument("--no-ray", action="store_true")
    add_model_options(p)
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
    # the test candles, and before --train-end what the weekly job's lake would have held then
    if use_ray:
        results = update_with_ray(settings, tickers, [args.timeframe], args.test_end, history_as_of=args.train_end)
    else:
        results = update_local(settings, tickers, [args.timeframe], args.test_end, history_as_of=args.train_end)
    failed = [r for r in results if r.status == "failed"]
    print(f"backtest: lake filled for {len(tickers)} symbols ({len(failed)} failed)")
    params, direct_params = model_params(args, load_tuned_params(settings.model_dir, args.timeframe))
    spec = FitSpec(settings.data_dir, tickers, args.timeframe, utc(args.train_end), params=params,
                   direct_params=direct_params, use_ray=use_ray, storage_path=join(settings.model_dir, ".ray_train"),
                   calibration_origins=args.max_origins)
    report = run_backtest(spec, args.test_end, args.model, stride=args.stride)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"backtest: {report['n_forecasts']} forecasts of {report['n_symbols']} symbols, report in {args.json}")
    print(f"{'model':<16} {'MAE h1':>9} {'MAE h10':>9} {'MAE h30':>9} {'dir acc':>8} {'cover80':>8} {'score':>9}")
    for name, model in report["models"].items():
        h, s = model["horizons"], report["summary"][name]
        print(f"{name:<16} {h['1']['mae']:>9.5f} {h['10']['mae']:>9.5f} {h['30']['mae']:>9.5f} "
              f"{s['directional_accuracy_mean']:>8.3f} {s['coverage_80_mean']:>8.3f} {s['score']:>9.5f}")


if __name__ == "__main__":
    main()
