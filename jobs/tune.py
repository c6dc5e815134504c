"""`python -m jobs.tune --timeframe TF [--trials N]`: a Ray Tune sweep of the XGBoost parameters;
the best configuration is saved where the next `jobs.weekly_training` finds it."""

from __future__ import annotations

import pandas as pd

from jobs.cli import init_ray, parser, positive_int, setup
from market_data.source import utc
from market_data.timeframes import TIMEFRAMES
from market_data.universe import top_symbols
from training.spec import FitSpec
from training.tuning import tune_timeframe


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--timeframe", required=True, choices=TIMEFRAMES)
    p.add_argument("--trials", type=positive_int, default=20)
    p.add_argument("--top", type=positive_int, default=100, help="symbols by volume rank to tune on (default 100)")
    p.add_argument("--max-trees", type=positive_int, default=200)
    args = p.parse_args(argv)
    settings, engine = setup()
    tickers = top_symbols(engine, args.top)
    if not tickers:
        raise SystemExit("tune: no ranked symbols; run jobs.weekly_training (or sync/rank/update_data) first")
    init_ray()
    spec = FitSpec(settings.data_dir, tickers, args.timeframe, utc(args.as_of))
    table, best = tune_timeframe(spec, settings.model_dir, args.trials, args.max_trees)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(table.to_string())
    print(f"\nbest {args.timeframe}: valid RMSE {best['valid_rmse']:.5f} with {best['params']}")
    print(f"saved to {settings.model_dir}/tuning/{args.timeframe}_best.json (the next training uses it)")


if __name__ == "__main__":
    main()
