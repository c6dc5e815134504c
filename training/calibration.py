"""Honest forecasts, fitted on held-out forecasts only: how much of a model's move to keep, how
sure to be of its direction, and the band (`training.band`), from raw recursive or direct
forecasts of the validation period and what actually happened, per horizon h:
- `shrink[h]`: how much of the model's cumulative log return to keep (0 = naive). Least squares
  through the origin, clipped to [0, 1], at the horizons from h = 1 on where 90 % of block
  resamples show the forecast so shrunk beating naive's error; 0 from the first that does not
  (`proven_edge`, `edge_horizon`), beyond which the path stops moving.
- `conf_a[h]`, `conf_b[h]`: a logistic map from signal strength |forecast| / (volatility sqrt(h))
  to the probability that the forecast direction is right, tempered toward a coin toss by how
  well a fit on half the validation period predicts the other half, at the temperature that 90 %
  of block resamples still support (`proven_temperature`).
- `band`: the 80 % band (`training.band.Band`), the model's residuals and naive's moves in the
  units of the volatility model validation chose.
Where the history is too short to check all 30 horizons (monthly candles), the fitted horizons
are `validated_horizon` and the calibration is `extended` to 30.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from market_data.timeframes import HORIZON
from stats.bootstrap import block_sums, equal_spans
from training.band.band import Band, BandBasis
from training.band.scale import BandScale


@dataclass(frozen=True)
class Calibration:
    shrink: list[float]
    conf_a: list[float]
    conf_b: list[float]
    n_origins: int
    band: Band
    validated_horizon: int = HORIZON  # horizons beyond it were never checked: naive, extrapolated bands
    # horizons 1..edge_horizon follow the model where it keeps a move; beyond, the last of them is
    # carried forward (`proven_edge`); 30 for models saved before, which kept any horizon on its own
    edge_horizon: int = HORIZON

    def as_dict(self) -> dict[str, Any]:
        return {"shrink": list(self.shrink), "conf_a": list(self.conf_a), "conf_b": list(self.conf_b),
                "n_origins": self.n_origins, "band": self.band.as_dict(),
                "validated_horizon": self.validated_horizon, "edge_horizon": self.edge_horizon}

    @classmethod
    def from_dict(cls, data: dict[str, Any], window: int) -> Calibration:
        """`window`: the timeframe's rolling one, the scale of bands saved without a volatility
        model. Artifacts saved before the band was one record (its quantiles, scale and market
        adaptation beside the shrink, `band_lo` ... `fitted_until`) are read into one; a per-coin
        adaptation rate they carry (`adapt_rate`) is dropped: it cost the band sharpness
        (bench/README.md) and the market-wide adaptation replaced it."""
        band = data.get("band")
        if band is None:
            band = {"scale": data.get("band_scale"), "lo": data["band_lo"], "hi": data["band_hi"],
                    "naive_lo": data["naive_lo"], "naive_hi": data["naive_hi"],
                    "market_rate": data.get("market_rate", 0.0), "fitted_until": data.get("fitted_until", "")}
        return cls([float(v) for v in data["shrink"]], [float(v) for v in data["conf_a"]],
                   [float(v) for v in data["conf_b"]], int(data["n_origins"]), Band.from_dict(band, window),
                   int(data.get("validated_horizon", HORIZON)), int(data.get("edge_horizon", HORIZON)))

    def extended(self, horizon: int) -> Calibration:
        """Padded to `horizon` steps beyond the ones fitted (which held-out data could check): the
        forecaster carries the last checked forecast forward there, with the last band quantiles
        (so bands keep widening with the scale) and a coin-flip confidence."""
        fitted = len(self.shrink)
        if fitted >= horizon:
            return self
        zeros = [0.0] * (horizon - fitted)
        return replace(self, shrink=list(self.shrink) + zeros, conf_a=list(self.conf_a) + zeros,
                       conf_b=list(self.conf_b) + zeros, band=self.band.extended(horizon), validated_horizon=fitted,
                       edge_horizon=min(self.edge_horizon, fitted))

    def as_naive(self) -> Calibration:
        """No horizon kept: naive closes and naive's band, flat directions."""
        return replace(self, shrink=[0.0] * len(self.shrink), band=self.band.as_naive(), edge_horizon=0)

    def with_band(self, band: Band) -> Calibration:
        return replace(self, band=band)

    @classmethod
    def identity(cls, horizon: int, scale: BandScale) -> Calibration:
        """Before calibration: raw forecasts, Gaussian-like 80 % bands, coin-flip confidence."""
        zeros = [0.0] * horizon
        return cls([1.0] * horizon, zeros, zeros, 0, Band.gaussian(scale, horizon))


def horizon_scale(sigma: np.ndarray, steps: int) -> np.ndarray:
    """(origins x steps) sigma sqrt(h): how far a random walk with one-candle volatility sigma
    typically moves in h candles. Bands, confidence and the direct models' targets are in its units."""
    return sigma[:, None] * np.sqrt(np.arange(1, steps + 1))[None, :]


def scaled(values: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Divide (origins x horizons) values by sigma * sqrt(h)."""
    return values / horizon_scale(sigma, values.shape[1])


SHRINK_QUANTILE = 0.10  # an edge counts where 90 % of block resamples still show it
BOOTSTRAP_SAMPLES = 400  # validation's tests draw fewer than an interval (`stats.bootstrap.SAMPLES`): they run per horizon
BLOCK_ORIGINS = 10  # neighbouring origins of a symbol share most of their future: resample them together


VALIDATION_BLOCKS = 20


def validation_blocks(n: int, times: np.ndarray | None = None) -> np.ndarray:
    """The bootstrap block of each of `n` validation origins, for `proven_edge` and
    `proven_temperature`. With `times` (each origin's time): VALIDATION_BLOCKS spans of origin time
    of equal length, all symbols together. Coins move together, so the origins of one span are
    one draw of the market, not one per coin; and an origin's 30-candle future reaches about one
    span ahead (validation of the real daily coins spans ~500 candles, of 4-hourly ~600: spans of
    ~25 and ~30 candles). Without `times`: runs of BLOCK_ORIGINS
    neighbouring origins (of one symbol, in `select_origins`' order)."""
    spans = None if times is None or not n else equal_spans(times, VALIDATION_BLOCKS)
    if spans is not None:
        return spans
    return np.arange(n) // BLOCK_ORIGINS


def proven_edge(raw: np.ndarray, actual: np.ndarray, blocks: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Per horizon, how much of the model's cumulative return to keep: the least-squares factor
    through the origin (sum raw*actual / sum raw^2, clipped to [0, 1]) where validation proves that
    the forecast so shrunk beats naive's, and 0 (naive) elsewhere. Proven: in 90 % of block
    resamples (blocks: `validation_blocks`) its mean absolute error is below naive's at that
    horizon, the one-sided test on the error itself, which is what the forecast is judged by; a
    model whose sign is right more often than chance but whose linear fit to the outcome is weak
    keeps its edge, and a model without one adds noise to naive's forecast, so its error is above
    naive's and nothing passes but luck. The edge is kept from h = 1 up to the first horizon that
    fails (`edge_horizon`): a forecast path follows the model while validation keeps proving it,
    then stops moving (the forecaster carries the last kept step forward)."""
    blocks = validation_blocks(len(raw)) if blocks is None else blocks
    with np.errstate(divide="ignore", invalid="ignore"):
        den = (raw**2).sum(axis=0)
        factor = np.clip(np.where(den > 0, (raw * actual).sum(axis=0) / np.where(den > 0, den, 1.0), 0.0), 0.0, 1.0)
    gain = np.abs(actual) - np.abs(actual - raw * factor[None, :])  # > 0 where the model beats naive
    sums, _ = block_sums(gain, np.ones((len(raw), 1)), blocks, BOOTSTRAP_SAMPLES, seed)
    proven = (np.quantile(sums, SHRINK_QUANTILE, axis=0) > 0) & (factor > 0)
    edge = edge_horizon(proven)
    return np.where(np.arange(len(factor)) < edge, factor, 0.0)


def edge_horizon(proven: np.ndarray) -> int:
    """How many leading horizons are proven (0: none, not even h = 1)."""
    failed = np.flatnonzero(~np.asarray(proven, dtype=bool))
    return int(failed[0]) if len(failed) else len(proven)


def later_half(times: np.ndarray) -> np.ndarray:
    """True for the times after the median: the later half of a period, whatever the time unit."""
    stamps = np.asarray(times).astype("datetime64[ms]").astype(np.int64)
    return stamps > np.median(stamps)


def kept_moves(shrink: np.ndarray, p_right: np.ndarray) -> np.ndarray:
    """Where a forecast keeps the model's move (else it states naive's close): validation proved an
    edge at the horizon (shrink > 0) and, for this forecast's signal strength, the calibrated
    chance that the model's sign is right is above one half. A chance of exactly one half (the
    confidence fit tempered to a coin toss) is no edge: such a step is `flat`, not a call with
    confidence 0.5. `p_right` is (origins x horizons)."""
    return (p_right > 0.5) & (np.asarray(shrink)[None, : p_right.shape[1]] > 0)


TEMPERATURES = np.linspace(0.0, 1.0, 21)


def _logistic(strength: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of P(correct) against signal strength; the base rate where one class is missing."""
    from sklearn.linear_model import LogisticRegression

    y = correct.astype(int)
    if len(y) == 0:
        return 0.0, 0.0
    if 0 < y.sum() < len(y):
        model = LogisticRegression(C=1.0).fit(strength[:, None], y)
        return float(model.intercept_[0]), float(model.coef_[0, 0])
    rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    return float(np.log(rate / (1 - rate))), 0.0


def proven_temperature(logit: np.ndarray, correct: np.ndarray, blocks: np.ndarray, seed: int = 0) -> float:
    """The factor in [0, 1] on held-out logits with the lowest log loss (1 keeps a fit that
    carries to unseen origins, 0 turns one that does not into a coin toss, confidence 0.5), at its
    lower 10 % block-bootstrap quantile, as `proven_edge` keeps only the edge that 90 % of
    resamples prove. A confidence map that holds in validation only thanks to a few market moves
    is trusted less: on 13 real test windows the point estimate stated up to 0.25 more than the
    observed hit rate (bench/README.md)."""
    y = correct.astype(float)
    p = np.clip(1.0 / (1.0 + np.exp(-np.outer(logit, TEMPERATURES))), 1e-9, 1 - 1e-9)
    loss = -(y[:, None] * np.log(p) + (1 - y[:, None]) * np.log(1 - p))  # origins x temperatures
    sums, _ = block_sums(loss, np.ones((len(y), 1)), blocks, BOOTSTRAP_SAMPLES, seed)
    best = TEMPERATURES[np.argmin(sums, axis=1)]
    return float(np.quantile(best, SHRINK_QUANTILE, method="lower"))


def fit_calibration(raw: np.ndarray, actual: np.ndarray, sigma: np.ndarray, times: np.ndarray | None,
                    basis: BandBasis) -> Calibration:
    """`raw` and `actual` are (origins x horizons) cumulative log returns; `sigma` the recent
    one-candle volatility at each origin; `times` each origin's time. The bootstraps of shrinkage
    and confidence resample `validation_blocks` of origin time (without `times`, runs of
    neighbouring rows: origins in (symbol, time) order, as `select_origins` gives them). The band
    is in the units of `basis`, naive's from every validation candle (from the origins alone where
    those are fewer), both with `band_quantiles`' margin for a regime change (halves by `times`).
    Confidence is a logistic fit of P(sign right) on signal strength, tempered toward 0.5 by how
    well it predicts origins it was not fitted on: with `times`, a fit on the earlier half of the
    period predicts the later half and the reverse, so a relation that drifts within validation
    is trusted less; without, alternate blocks of origins; and at the temperature 90 % of block
    resamples support."""
    band_at = basis.at
    ok = (np.isfinite(raw).all(axis=1) & np.isfinite(actual).all(axis=1) & np.isfinite(sigma) & (sigma > 0)
          & np.isfinite(band_at).all(axis=1))
    raw, actual, sigma, band_at = raw[ok], actual[ok], sigma[ok], band_at[ok]
    times = None if times is None else np.asarray(times)[ok]
    if len(raw) < 20:
        raise ValueError(f"only {len(raw)} usable calibration origins; at least 20 are needed")
    horizon = raw.shape[1]
    blocks = validation_blocks(len(raw), times)
    shrink = proven_edge(raw, actual, blocks)
    strength = np.abs(scaled(raw, sigma))
    correct = (np.sign(raw) == np.sign(actual)) & (raw != 0)
    conf_a, conf_b = np.zeros(horizon), np.zeros(horizon)
    # the period's later half, for the confidence's 2-fold check and the band's regime margin
    later = later_half(times) if times is not None and len(np.unique(times)) > 1 else None
    folds = later.astype(int) if later is not None else (np.arange(len(raw)) // BLOCK_ORIGINS) % 2
    for h in range(horizon):
        a, b = _logistic(strength[:, h], correct[:, h])
        # temper by how well the fit carries to origins it did not see (2-fold: time halves or blocks)
        held_out = np.zeros(len(raw))
        for fold in (0, 1):
            fa, fb = _logistic(strength[folds != fold, h], correct[folds != fold, h])
            held_out[folds == fold] = fa + fb * strength[folds == fold, h]
        t = proven_temperature(held_out, correct[:, h], blocks)
        conf_a[h], conf_b[h] = t * a, t * b

    def parts(values: np.ndarray) -> list[np.ndarray]:
        return [values] if later is None else [values[~later], values[later]]

    enough = sum(len(part) for part in basis.naive_halves) >= len(raw)
    naive = basis.naive_halves if enough else parts(actual / band_at)
    # the model's band from the forecasts it states: where it keeps a move (shrink > 0 and a
    # better-than-even chance of the sign), its residuals; elsewhere it states naive's forecast
    moves = kept_moves(shrink, p_right(conf_a, conf_b, raw, sigma))
    residual = np.where(moves, (actual - raw * shrink) / band_at, np.nan)
    return Calibration(shrink.tolist(), conf_a.tolist(), conf_b.tolist(), int(len(raw)),
                       Band.fit(basis.scale, naive, parts(residual)), edge_horizon=edge_horizon(shrink > 0))


def p_right(conf_a: np.ndarray, conf_b: np.ndarray, raw: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Probability that sign(raw) is the sign of the outcome, per origin and horizon, by the
    logistic map (`conf_a`, `conf_b` per horizon) of signal strength."""
    strength = np.abs(scaled(raw, sigma))
    logit = np.asarray(conf_a)[None, : raw.shape[1]] + np.asarray(conf_b)[None, : raw.shape[1]] * strength
    return 1.0 / (1.0 + np.exp(-logit))


def confidence(cal: Calibration, raw: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """`p_right` of the calibration's confidence map."""
    return p_right(np.asarray(cal.conf_a), np.asarray(cal.conf_b), raw, sigma)
