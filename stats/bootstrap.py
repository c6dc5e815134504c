"""The block bootstrap. Neighbouring forecast origins share most of their future and coins move
together, so an interval that resamples origins one by one is far too narrow: whole blocks of
origin time (every coin in them) are resampled instead.

Blocks come in two sizes, each for what it is asked: `runs_of_time` cuts origin time into runs
of a fixed number of candles (the test windows' intervals: a run's origins share their next
candles), `equal_spans` into a fixed number of spans of equal length (validation's edge and
confidence tests: a span is one draw of the market however long validation is).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SAMPLES = 1000  # resamples of an interval


def block_sums(num: np.ndarray, den: np.ndarray, blocks: np.ndarray, samples: int,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Resampled sums of `num` and `den` ((rows x columns) each, `blocks` each row's block):
    (samples x columns) each, whole blocks drawn with replacement."""
    ids, index = np.unique(blocks, return_inverse=True)
    num_sums = np.zeros((len(ids), num.shape[1]))
    den_sums = np.zeros((len(ids), den.shape[1]))
    np.add.at(num_sums, index, num)
    np.add.at(den_sums, index, den)
    weights = np.random.default_rng(seed).multinomial(len(ids), np.full(len(ids), 1.0 / len(ids)),
                                                      size=samples).astype(np.float64)
    return weights @ num_sums, weights @ den_sums


def ratio_interval(num: np.ndarray, den: np.ndarray, blocks: np.ndarray, level: float = 0.95,
                   seed: int = 0) -> tuple[float, float, float]:
    """sum(num) / sum(den) over rows (1 where the denominator is 0), and its block-bootstrap
    interval at `level`: a mean absolute error over naive's, an interval score over a baseline's."""
    num_sums, den_sums = block_sums(num[:, None], den[:, None], blocks, SAMPLES, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (num_sums / den_sums)[:, 0]
    tail = (1.0 - level) / 2
    low, high = np.nanquantile(ratios, [tail, 1.0 - tail])
    total = float(den.sum())
    return (float(num.sum()) / total if total > 0 else 1.0), float(low), float(high)


def share_interval(hits: np.ndarray, blocks: np.ndarray, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """The share of rows where `hits` (a band's coverage, a direction's hit rate), and its
    block-bootstrap interval at `level`."""
    values = np.asarray(hits, dtype=np.float64)
    return ratio_interval(values, np.ones_like(values), blocks, level, seed)


def runs_of_time(stamps: pd.DatetimeIndex, candle: pd.Timedelta, candles: int,
                 since: pd.Timestamp | None = None) -> np.ndarray:
    """Block of each origin time (naive UTC): runs of `candles` candles of length `candle` from
    `since` (the earliest where not given). Origins taken in batches share blocks when the
    batches share `since`."""
    first = stamps.min() if since is None else pd.Timestamp(since).tz_localize(None)
    return np.asarray((stamps - first) // (candle * candles), dtype=np.int64)


def equal_spans(times: np.ndarray, spans: int) -> np.ndarray | None:
    """Block of each origin time: `spans` spans of equal length from the first to the last
    (None where all times are one)."""
    stamps = np.asarray(times).astype("datetime64[ms]").astype(np.int64)
    width = int(stamps.max() - stamps.min()) if len(stamps) else 0
    if width <= 0:
        return None
    return np.minimum((stamps - stamps.min()) * spans // width, spans - 1)
