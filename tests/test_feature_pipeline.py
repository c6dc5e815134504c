"""The Ray Data feature table, key indicators from contributions, and the generated feature list."""

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest
import xgboost as xgb

from features.build import catalogue, feature_names
from features.docs import render
from features.explain import key_indicators
from features.pipeline import feature_dataset, feature_table_local, write_feature_table
from market_data.synthetic import SyntheticMarket
from market_data.update import update_pair
from storage.lake import Lake

NOW = datetime(2025, 11, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def lake_with_symbols(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("lake")
    market = SyntheticMarket(seed=3, n_coins=5, now=NOW)
    tickers = [t.ticker for t in market.list_tickers()]
    for t in tickers:
        update_pair(Lake(root), market, t, "1d", NOW)
    return root, tickers


def test_ray_data_table_equals_the_plain_loop(ray_local, lake_with_symbols, tmp_path: Path) -> None:
    root, tickers = lake_with_symbols
    local = feature_table_local(root, [*tickers, "X:NOTINLAKEUSD"], "1d")
    assert list(local.columns) == ["symbol", "timestamp", *feature_names("1d")]
    assert set(local["symbol"]) == set(tickers) and np.isfinite(local[feature_names("1d")].to_numpy()).all()
    distributed = feature_dataset(root, [*tickers, "X:NOTINLAKEUSD"], "1d").to_pandas()
    key = ["symbol", "timestamp"]
    pd.testing.assert_frame_equal(distributed.sort_values(key).reset_index(drop=True),
                                  local.sort_values(key).reset_index(drop=True), check_dtype=False)
    rows = write_feature_table(root, tickers, "1d", tmp_path / "table")
    assert rows == len(local) == pads.dataset(tmp_path / "table", format="parquet").count_rows()


def test_key_indicators_group_contributions_into_readable_names(lake_with_symbols) -> None:
    root, tickers = lake_with_symbols
    table = feature_table_local(root, tickers, "1d")
    names = feature_names("1d")
    x = table[names].to_numpy(np.float32)
    y = 3 * x[:, names.index("rsi_14")] / 100 + 2 * x[:, names.index("macd_hist")] * 100 + x[:, names.index("bb_upper_20")]
    booster = xgb.train({"max_depth": 3, "eta": 0.3}, xgb.DMatrix(x, y, feature_names=names), 30)
    contribs = booster.predict(xgb.DMatrix(x[:1], feature_names=names), pred_contribs=True)[0]
    top = key_indicators(contribs, names, "1d", top=3)
    labels = {f.name: f.label for f in catalogue("1d")}
    by_label = pd.Series(np.abs(contribs[:-1]), index=[labels[n] for n in names]).groupby(level=0).sum()
    assert top == by_label.sort_values(ascending=False).index[:3].tolist()
    manual = np.zeros(len(names))
    manual[names.index("macd")] = -0.2
    manual[names.index("macd_signal")] = 0.15
    manual[names.index("rsi_14")] = 0.3
    manual[names.index("bb_upper_20")] = 0.1
    assert key_indicators(manual, names, "1d") == ["MACD", "RSI", "Bollinger Upper"]
    with pytest.raises(ValueError, match="contributions"):
        key_indicators(np.zeros(3), names, "1d")


def test_feature_list_in_docs_is_generated_from_the_catalogue() -> None:
    doc = Path(__file__).resolve().parents[1] / "docs" / "features.md"
    assert doc.read_text() == render(), "run: python -m features.docs > docs/features.md"
