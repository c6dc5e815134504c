"""`key_indicators`: what drove one prediction, in the words a trader uses ("RSI", "MACD",
"Bollinger Upper"), from the model's own per-feature contributions (XGBoost `pred_contribs`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from features.build import catalogue


def key_indicators(contributions: np.ndarray, names: Sequence[str], timeframe: str, top: int = 3) -> list[str]:
    """The `top` indicator labels with the largest total |contribution|.

    `contributions` has one value per feature in `names` order, optionally followed by the bias
    term (as XGBoost returns it), which is ignored. Features of one indicator (macd, macd_signal,
    macd_hist) add up under one label.
    """
    values = np.asarray(contributions, dtype=np.float64).ravel()
    if values.size not in (len(names), len(names) + 1):
        raise ValueError(f"{values.size} contributions for {len(names)} features")
    labels = {f.name: f.label for f in catalogue(timeframe)}
    totals: dict[str, float] = defaultdict(float)
    for name, value in zip(names, values[: len(names)]):
        totals[labels.get(name, name)] += abs(value)
    ranked = sorted((v, k) for k, v in totals.items() if v > 0)
    return [label for _, label in reversed(ranked[-top:])]
