"""The indicator families: TA-Lib's groups plus returns, range, volume and calendar features.

Every feature is scale-free, so one model serves a coin at 1e-5 and one at 1e5:
- price levels (moving averages, bands, SAR…) are log ratios to the close;
- price differences (MACD, ATR, directional movement…) are divided by the close;
- oscillators (RSI, stochastics, ADX…) are already ratios of prices;
- volumes are ratios to their own rolling sums or means.
Prices and volumes are first divided by the series' first close and first positive volume.
That changes no feature mathematically, but keeps TA-Lib's arithmetic near 1, where its
internal zero tests (|x| < 1e-8) do not misfire on coins priced around 1e-5.

Every feature at row t uses candles up to t only (TA-Lib and rolling windows are causal).
Each family yields `(Feature, values)`; the catalogue is what the families yield, so the list
and the computation cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
import talib
import talib.abstract
from scipy.signal import lfilter

from features.profiles import Profile
from market_data.timeframes import spec

LN2 = float(np.log(2.0))

# TA-Lib's functions without the wrapper that converts pandas and polars series: every input
# here is already a float64 array, and the wrapper's checks cost as much as a 300-candle SMA
# (the recursive forecast runs ~160 of them per step).
ta = SimpleNamespace(**{name: getattr(getattr(talib, name), "__wrapped__", getattr(talib, name))
                        for name in talib.get_functions()})


@dataclass(frozen=True)
class Feature:
    name: str  # column name, e.g. "rsi_14"
    group: str  # overlap, momentum, volume, volatility, cycle, price_transform, statistics, pattern, returns, range, calendar
    window: int  # candles of history the value needs
    source: str  # the TA-Lib function or the formula
    label: str  # how a person names it in an explanation: "RSI", "MACD", "Bollinger Upper"


Values = np.ndarray
Produced = Iterator[tuple[Feature, Values]]


class Inputs:
    """Normalised float64 arrays of one symbol's candles (or of windows stacked end to end)."""

    def __init__(self, open_: Values, high: Values, low: Values, close: Values, volume: Values,
                 vwap: Values | None, timestamps: pd.DatetimeIndex) -> None:
        if len(close) == 0:
            raise ValueError("no candles to compute features from")
        scale = close[0]
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"first close must be a positive number, got {scale}")
        positive = volume[volume > 0]
        vscale = positive[0] if positive.size else 1.0
        self.o = quantize(open_ / scale)
        self.h = quantize(high / scale)
        self.l = quantize(low / scale)
        self.c = quantize(close / scale)
        self.v = quantize(volume / vscale)
        typical = (self.h + self.l + self.c) / 3.0
        if vwap is None:
            self.vwap = typical
        else:
            scaled = quantize(vwap / scale)
            self.vwap = np.where(np.isfinite(scaled) & (scaled > 0), scaled, typical)
        self.logc = np.log(self.c)
        self.ret1 = np.concatenate([[np.nan], np.diff(self.logc)])
        self.log_v = np.log(np.maximum(self.v, 1e-9))
        self.timestamps = timestamps

    @classmethod
    def of(cls, candles: pd.DataFrame) -> Inputs:
        def column(name: str) -> Values:
            return candles[name].to_numpy(dtype=np.float64)

        return cls(column("open"), column("high"), column("low"), column("close"), column("volume"),
                   column("vwap") if "vwap" in candles.columns else None,
                   pd.DatetimeIndex(pd.to_datetime(candles["timestamp"], utc=True)))


MANTISSA_BITS = 36


def quantize(values: Values) -> Values:
    """Round to 36 significant bits (about 11 digits).

    Prices scaled by any constant and then divided by their own first close differ from the
    unscaled ones by a rounding error or two; TA-Lib compares prices (directional movement,
    candle patterns, Aroon), and on real, tick-sized prices those comparisons often meet exact
    ties that such an error would flip. Rounding both to the same 36-bit grid gives both
    computations bit-identical inputs.
    """
    mantissa, exponent = np.frexp(values)
    return np.ldexp(np.round(mantissa * 2.0**MANTISSA_BITS) / 2.0**MANTISSA_BITS, exponent)


def log_ratio(level: Values, close: Values) -> Values:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(level / close)


def safe_div(num: Values, den: Values, fill: float = 0.0) -> Values:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where((den == 0) & ~np.isnan(num), fill, out)


def shift(values: Values, n: int) -> Values:
    out = np.full_like(values, np.nan)
    if n < len(values):
        out[n:] = values[: len(values) - n]
    return out


def rolling(values: Values, n: int, how: str) -> Values:
    series = pd.Series(values).rolling(n, min_periods=n)
    return getattr(series, how)().to_numpy()


def _wilder_sum(x: Values, n: int) -> Values:
    """TA-Lib's Wilder running sum: the sum of x[1..n-1] at n-1, then s = s - s/n + x."""
    out = np.full_like(x, np.nan)
    if len(x) <= n:
        return out
    first = np.sum(x[1:n])
    out[n - 1] = first
    out[n:] = lfilter([1.0], [1.0, -(1.0 - 1.0 / n)], x[n:], zi=[(1.0 - 1.0 / n) * first])[0]
    return out


def directional_movement(h: Values, lo: Values, c: Values, n: int) -> dict[str, Values]:
    """Wilder's +DM/-DM, +DI/-DI, DX, ADX and ADXR with TA-Lib's recurrences.

    TA-Lib decides +DM against -DM by exact comparison of price differences; on tick-sized real
    prices the two are often exactly equal, and a rounding error then decides the candle (and,
    through the smoothing, the next dozens). Here moves within 1e-9 of the close count as ties,
    so the result does not depend on how the prices were scaled or where the window starts.
    """
    tol = 1e-9 * c
    up = h - shift(h, 1)
    down = shift(lo, 1) - lo
    plus = np.where((up > tol) & (up - down > tol), up, 0.0)
    minus = np.where((down > tol) & (down - up > tol), down, 0.0)
    true_range = np.maximum(h, shift(c, 1)) - np.minimum(lo, shift(c, 1))
    plus_s, minus_s, tr_s = (_wilder_sum(v, n) for v in (plus, minus, true_range))
    plus_di = safe_div(100.0 * plus_s, tr_s)
    minus_di = safe_div(100.0 * minus_s, tr_s)
    plus_di[: n] = minus_di[: n] = np.nan
    dx = safe_div(100.0 * np.abs(plus_di - minus_di), plus_di + minus_di)
    adx = np.full_like(c, np.nan)
    first = 2 * n - 1
    if len(c) > first:
        start = float(np.mean(dx[n: first + 1]))
        adx[first] = start
        adx[first + 1:] = lfilter([1.0 / n], [1.0, -(1.0 - 1.0 / n)], dx[first + 1:],
                                  zi=[(1.0 - 1.0 / n) * start])[0]
    adxr = (adx + shift(adx, n - 1)) / 2.0
    return {"plus_dm": plus_s, "minus_dm": minus_s, "plus_di": plus_di, "minus_di": minus_di,
            "dx": dx, "adx": adx, "adxr": adxr}


def money_flow_index(h: Values, lo: Values, c: Values, v: Values, n: int) -> Values:
    """TA-Lib's MFI (money flow of the last `n` typical-price moves), scale-free.

    TA-Lib answers 0 whenever the window's total money flow is below 1.0, in whatever units the
    prices and volumes happen to be, and compares typical prices exactly: a window of quiet,
    low-volume hours then reads differently depending on how its candles were scaled. Here a move
    within 1e-9 of the price is a tie, and a window without money flow is neutral (50).
    """
    typical = (h + lo + c) / 3.0
    move = typical - shift(typical, 1)
    tol = 1e-9 * typical
    flow = typical * v
    pos = ta.SUM(np.where(np.isnan(move), np.nan, np.where(move > tol, flow, 0.0)), n)
    neg = ta.SUM(np.where(np.isnan(move), np.nan, np.where(move < -tol, flow, 0.0)), n)
    total = pos + neg
    return np.where(total > 0, 100.0 * pos / np.where(total > 0, total, 1.0), np.where(np.isnan(total), np.nan, 50.0))


def overlap(x: Inputs, p: Profile) -> Produced:
    c = x.c
    for n in p.ma:
        yield Feature(f"sma_{n}", "overlap", n, "talib.SMA / close, log", "SMA"), log_ratio(ta.SMA(c, n), c)
    for n in p.ema:
        yield Feature(f"ema_{n}", "overlap", n, "talib.EMA / close, log", "EMA"), log_ratio(ta.EMA(c, n), c)
    for n in p.wma:
        yield Feature(f"wma_{n}", "overlap", n, "talib.WMA / close, log", "WMA"), log_ratio(ta.WMA(c, n), c)
    for n in p.dema:
        yield Feature(f"dema_{n}", "overlap", 2 * n, "talib.DEMA / close, log", "DEMA"), log_ratio(ta.DEMA(c, n), c)
    for n in p.tema:
        yield Feature(f"tema_{n}", "overlap", 3 * n, "talib.TEMA / close, log", "TEMA"), log_ratio(ta.TEMA(c, n), c)
    for n in p.trima:
        yield Feature(f"trima_{n}", "overlap", n, "talib.TRIMA / close, log", "TRIMA"), log_ratio(ta.TRIMA(c, n), c)
    for n in p.t3:
        yield Feature(f"t3_{n}", "overlap", 6 * n, "talib.T3 / close, log", "T3"), log_ratio(ta.T3(c, n, 0.7), c)
    for n in p.bbands:
        upper, middle, lower = ta.BBANDS(c, n, 2.0, 2.0)
        # relative distance, not log: the lower band goes below zero when volatility is extreme
        yield Feature(f"bb_upper_{n}", "overlap", n, "(talib.BBANDS upper - close) / close", "Bollinger Upper"), upper / c - 1.0
        yield Feature(f"bb_lower_{n}", "overlap", n, "(talib.BBANDS lower - close) / close", "Bollinger Lower"), lower / c - 1.0
        yield Feature(f"bb_width_{n}", "overlap", n, "(upper - lower) / middle", "Bollinger Width"), safe_div(upper - lower, middle)
        yield Feature(f"bb_pctb_{n}", "overlap", n, "(close - lower) / (upper - lower)", "Bollinger %B"), safe_div(c - lower, upper - lower, 0.5)
    for n in p.mid:
        yield Feature(f"midpoint_{n}", "overlap", n, "talib.MIDPOINT / close, log", "Midpoint"), log_ratio(ta.MIDPOINT(c, n), c)
        yield Feature(f"midprice_{n}", "overlap", n, "talib.MIDPRICE / close, log", "Midprice"), log_ratio(ta.MIDPRICE(x.h, x.l, n), c)
    for n in p.donchian:
        yield Feature(f"donchian_high_{n}", "overlap", n, "talib.MAX(high) / close, log", "Donchian High"), log_ratio(ta.MAX(x.h, n), c)
        yield Feature(f"donchian_low_{n}", "overlap", n, "talib.MIN(low) / close, log", "Donchian Low"), log_ratio(ta.MIN(x.l, n), c)
    yield Feature("sar", "overlap", 2, "talib.SAR(0.02, 0.2) / close, log", "Parabolic SAR"), log_ratio(ta.SAR(x.h, x.l, 0.02, 0.2), c)
    if p.cycle:
        mama, fama = ta.MAMA(c, 0.5, 0.05)
        yield Feature("mama", "overlap", 32, "talib.MAMA / close, log", "MAMA"), log_ratio(mama, c)
        yield Feature("fama", "overlap", 32, "talib.MAMA fama / close, log", "MAMA"), log_ratio(fama, c)
        yield Feature("ht_trendline", "overlap", 63, "talib.HT_TRENDLINE / close, log", "Hilbert Trendline"), log_ratio(ta.HT_TRENDLINE(c), c)


def momentum(x: Inputs, p: Profile) -> Produced:
    # STOCHF's fast %K is left out: it is Williams %R plus 100; CMO is 2 RSI - 100; MOM and ROC
    # are the returns of `returns`.
    o, h, lo, c = x.o, x.h, x.l, x.c
    for n in p.rsi:
        yield Feature(f"rsi_{n}", "momentum", n, "talib.RSI", "RSI"), ta.RSI(c, n)
    for n in p.stoch:
        k, d = ta.STOCH(h, lo, c, fastk_period=n, slowk_period=3, slowk_matype=0, slowd_period=3, slowd_matype=0)
        yield Feature(f"stoch_k_{n}", "momentum", n + 4, "talib.STOCH slowk", "Stochastic"), k
        yield Feature(f"stoch_d_{n}", "momentum", n + 4, "talib.STOCH slowd", "Stochastic"), d
        rk, rd = ta.STOCHRSI(c, timeperiod=n, fastk_period=5, fastd_period=3, fastd_matype=0)
        yield Feature(f"stochrsi_k_{n}", "momentum", n + 7, "talib.STOCHRSI fastk", "Stochastic RSI"), rk
        yield Feature(f"stochrsi_d_{n}", "momentum", n + 7, "talib.STOCHRSI fastd", "Stochastic RSI"), rd
    for n in p.willr:
        yield Feature(f"willr_{n}", "momentum", n, "talib.WILLR", "Williams %R"), ta.WILLR(h, lo, c, n)
    for n in p.cci:
        yield Feature(f"cci_{n}", "momentum", n, "talib.CCI", "CCI"), ta.CCI(h, lo, c, n)
    for n in p.mfi:
        yield (Feature(f"mfi_{n}", "momentum", n, "MFI: TA-Lib's money flow index (ties tolerant, scale-free)", "MFI"),
               money_flow_index(h, lo, c, x.v, n))
    for n in p.adx:
        dm = directional_movement(h, lo, c, n)
        src = "Wilder directional movement (TA-Lib's recurrences, ties tolerant)"
        yield Feature(f"adx_{n}", "momentum", 2 * n, f"ADX: {src}", "ADX"), dm["adx"]
        yield Feature(f"adxr_{n}", "momentum", 3 * n, f"ADXR: {src}", "ADX"), dm["adxr"]
        yield Feature(f"dx_{n}", "momentum", n + 1, f"DX: {src}", "ADX"), dm["dx"]
        yield Feature(f"plus_di_{n}", "momentum", n + 1, f"+DI: {src}", "+DI"), dm["plus_di"]
        yield Feature(f"minus_di_{n}", "momentum", n + 1, f"-DI: {src}", "-DI"), dm["minus_di"]
        yield Feature(f"plus_dm_{n}", "momentum", n + 1, f"+DM / close: {src}", "+DM"), dm["plus_dm"] / c
        yield Feature(f"minus_dm_{n}", "momentum", n + 1, f"-DM / close: {src}", "-DM"), dm["minus_dm"] / c
    for n in p.aroon:
        down, up = ta.AROON(h, lo, n)
        yield Feature(f"aroon_up_{n}", "momentum", n, "talib.AROON up", "Aroon"), up
        yield Feature(f"aroon_down_{n}", "momentum", n, "talib.AROON down", "Aroon"), down
        yield Feature(f"aroonosc_{n}", "momentum", n, "talib.AROONOSC", "Aroon"), ta.AROONOSC(h, lo, n)
    yield Feature("ultosc", "momentum", max(p.ultosc), f"talib.ULTOSC{p.ultosc}", "Ultimate Oscillator"), ta.ULTOSC(h, lo, c, *p.ultosc)
    yield Feature("bop", "momentum", 1, "talib.BOP", "Balance of Power"), ta.BOP(o, h, lo, c)
    for i, (fast, slow, signal) in enumerate(p.macd):
        suffix = "" if i == 0 else f"_{fast}_{slow}_{signal}"
        macd, sig, hist = ta.MACD(c, fast, slow, signal)
        window = slow + signal
        yield Feature(f"macd{suffix}", "momentum", window, f"talib.MACD({fast},{slow},{signal}) / close", "MACD"), macd / c
        yield Feature(f"macd_signal{suffix}", "momentum", window, "talib.MACD signal / close", "MACD"), sig / c
        yield Feature(f"macd_hist{suffix}", "momentum", window, "talib.MACD hist / close", "MACD"), hist / c
    for fast, slow in p.ppo:
        yield Feature(f"ppo_{fast}_{slow}", "momentum", slow, "talib.PPO (SMA)", "PPO"), ta.PPO(c, fast, slow, 0)
    for n in p.trix:
        yield Feature(f"trix_{n}", "momentum", 3 * n, "talib.TRIX", "TRIX"), ta.TRIX(c, n)


def volume(x: Inputs, p: Profile) -> Produced:
    h, lo, c, v = x.h, x.l, x.c, x.v
    obv = ta.OBV(c, v)
    ad = ta.AD(h, lo, c, v)
    for n in p.flow:
        vol_sum = ta.SUM(v, n)
        yield Feature(f"obv_flow_{n}", "volume", n, "(OBV - OBV[n]) / sum(volume, n)", "OBV"), safe_div(obv - shift(obv, n), vol_sum)
        yield Feature(f"cmf_{n}", "volume", n, "(AD - AD[n]) / sum(volume, n) (Chaikin money flow)", "Chaikin Money Flow"), safe_div(ad - shift(ad, n), vol_sum)
    yield Feature("adosc_3_10", "volume", 10, "talib.ADOSC(3,10) / SMA(volume,10)", "Chaikin Oscillator"), safe_div(ta.ADOSC(h, lo, c, v, 3, 10), ta.SMA(v, 10))
    for n in p.vol_ratio:
        yield Feature(f"volume_ratio_{n}", "volume", n, "log(volume / SMA(volume, n))", "Volume"), np.clip(log_ratio(np.maximum(v, 1e-9), ta.SMA(v, n)), -10, 10)
    for n in p.vol_ema_ratio:
        yield Feature(f"volume_ema_ratio_{n}", "volume", n, "log(volume / EMA(volume, n))", "Volume"), np.clip(log_ratio(np.maximum(v, 1e-9), ta.EMA(v, n)), -10, 10)
    for n in p.vol_z:
        mean, std = ta.SMA(x.log_v, n), ta.STDDEV(x.log_v, n)
        yield Feature(f"volume_z_{n}", "volume", n, "z-score of log volume over n", "Volume"), safe_div(x.log_v - mean, std)
    yield Feature("vwap_ratio", "volume", 1, "log(vwap / close)", "VWAP"), log_ratio(x.vwap, c)
    for n in p.vwap_window:
        pv = ta.SUM(x.vwap * v, n)
        yield Feature(f"vwap_{n}", "volume", n, "log(sum(vwap*volume, n) / sum(volume, n) / close)", "VWAP"), log_ratio(safe_div(pv, ta.SUM(v, n), np.nan), c)


def return_std(log_returns: Values, n: int) -> Values:
    """Population standard deviation of the last `n` one-candle log returns: the `ret_std_<n>`
    features, and the volatility that scales every band."""
    return ta.STDDEV(log_returns, n)


def volatility(x: Inputs, p: Profile) -> Produced:
    h, lo, c, o = x.h, x.l, x.c, x.o
    for n in p.natr:
        yield Feature(f"natr_{n}", "volatility", n, "talib.NATR", "ATR"), ta.NATR(h, lo, c, n)
    yield Feature("trange", "volatility", 2, "talib.TRANGE / close", "True Range"), ta.TRANGE(h, lo, c) / c
    stds = {}
    for n in p.ret_std:
        stds[n] = return_std(x.ret1, n)
        yield Feature(f"ret_std_{n}", "volatility", n + 1, "talib.STDDEV of 1-candle log returns", "Volatility"), stds[n]
    short, long_ = p.ret_std[0], p.ret_std[-2]
    yield Feature(f"ret_std_ratio_{short}_{long_}", "volatility", long_ + 1, "ret_std short / ret_std long", "Volatility"), safe_div(stds[short], stds[long_], 1.0)
    hl2 = np.log(h / lo) ** 2
    co2 = np.log(c / o) ** 2
    for n in p.range_vol:
        yield Feature(f"parkinson_{n}", "volatility", n, "sqrt(mean(log(h/l)^2) / 4 ln 2)", "Volatility"), np.sqrt(ta.SMA(hl2, n) / (4 * LN2))
        gk = ta.SMA(0.5 * hl2 - (2 * LN2 - 1) * co2, n)
        yield Feature(f"garman_klass_{n}", "volatility", n, "Garman-Klass volatility", "Volatility"), np.sqrt(np.maximum(gk, 0.0))


def cycle(x: Inputs, p: Profile) -> Produced:
    if not p.cycle:
        return
    c = x.c
    inphase, quadrature = ta.HT_PHASOR(c)
    sine, leadsine = ta.HT_SINE(c)
    yield Feature("ht_dcperiod", "cycle", 63, "talib.HT_DCPERIOD", "Hilbert Cycle"), ta.HT_DCPERIOD(c)
    yield Feature("ht_dcphase", "cycle", 63, "talib.HT_DCPHASE", "Hilbert Cycle"), ta.HT_DCPHASE(c)
    yield Feature("ht_phasor_inphase", "cycle", 63, "talib.HT_PHASOR inphase / close", "Hilbert Cycle"), inphase / c
    yield Feature("ht_phasor_quadrature", "cycle", 63, "talib.HT_PHASOR quadrature / close", "Hilbert Cycle"), quadrature / c
    yield Feature("ht_sine", "cycle", 63, "talib.HT_SINE sine", "Hilbert Cycle"), sine
    yield Feature("ht_leadsine", "cycle", 63, "talib.HT_SINE leadsine", "Hilbert Cycle"), leadsine
    yield Feature("ht_trendmode", "cycle", 63, "talib.HT_TRENDMODE", "Hilbert Cycle"), ta.HT_TRENDMODE(c).astype(np.float64)


def price_transform(x: Inputs, p: Profile) -> Produced:
    # TYPPRICE and WCLPRICE are left out: relative to the close they are near-linear in MEDPRICE.
    o, h, lo, c = x.o, x.h, x.l, x.c
    yield Feature("avgprice", "price_transform", 1, "talib.AVGPRICE / close, log", "Average Price"), log_ratio(ta.AVGPRICE(o, h, lo, c), c)
    yield Feature("medprice", "price_transform", 1, "talib.MEDPRICE / close, log", "Median Price"), log_ratio(ta.MEDPRICE(h, lo), c)


def statistics(x: Inputs, p: Profile) -> Produced:
    logc = x.logc
    for n in p.linreg:
        yield Feature(f"linreg_slope_{n}", "statistics", n, "talib.LINEARREG_SLOPE of log close", "Linear Regression"), ta.LINEARREG_SLOPE(logc, n)
        yield Feature(f"linreg_dev_{n}", "statistics", n, "talib.LINEARREG of log close - log close", "Linear Regression"), ta.LINEARREG(logc, n) - logc
    for n in p.correl:
        yield Feature(f"correl_close_volume_{n}", "statistics", n, "talib.CORREL(close, volume)", "Price-Volume Correlation"), ta.CORREL(x.c, x.v, n)
        yield Feature(f"beta_high_low_{n}", "statistics", n, "talib.BETA(high, low)", "Beta"), ta.BETA(x.h, x.l, n)
    for n in p.bbands[:1]:
        yield Feature(f"stddev_{n}", "statistics", n, "talib.STDDEV(close) / close", "Standard Deviation"), ta.STDDEV(x.c, n) / x.c
    for n in p.moments:
        yield Feature(f"ret_skew_{n}", "statistics", n + 1, "rolling skew of log returns", "Skewness"), rolling(x.ret1, n, "skew")
        yield Feature(f"ret_kurt_{n}", "statistics", n + 1, "rolling kurtosis of log returns", "Kurtosis"), rolling(x.ret1, n, "kurt")


# Every TA-Lib candlestick function, named cdl_<pattern>, as -1 / 0 / +1.
CANDLE_PATTERNS: tuple[str, ...] = tuple(sorted(f for f in talib.get_function_groups()["Pattern Recognition"]))
_PATTERN_LOOKBACK = {fn: talib.abstract.Function(fn).lookback for fn in CANDLE_PATTERNS}


def patterns(x: Inputs, p: Profile) -> Produced:
    o, h, lo, c = x.o, x.h, x.l, x.c
    for fn in CANDLE_PATTERNS:
        name = fn[3:].lower()
        lookback = _PATTERN_LOOKBACK[fn]
        label = name.replace("3", "three ").replace("2", "two ").replace("_", " ").title() + " Pattern"
        yield Feature(f"cdl_{name}", "pattern", lookback + 1, f"talib.{fn}, sign", label), np.sign(getattr(ta, fn)(o, h, lo, c)).astype(np.float64)


def returns(x: Inputs, p: Profile) -> Produced:
    yield Feature("logret_1", "returns", 2, "log(close / close[1])", "Return"), x.ret1
    for lag in range(1, 5):
        yield Feature(f"logret_1_lag{lag}", "returns", 2 + lag, f"log return {lag} candles back", "Lagged Return"), shift(x.ret1, lag)
    for n in p.returns:
        yield Feature(f"logret_{n}", "returns", n + 1, f"log(talib.ROCR({n}))", "Return"), np.log(ta.ROCR(x.c, n))


def price_range(x: Inputs, p: Profile) -> Produced:
    # No candle-body column: crypto trades around the clock, so open = previous close and the
    # body log(close / open) equals `logret_1`; `gap` keeps the difference where there is one.
    o, h, lo, c = x.o, x.h, x.l, x.c
    hl = np.log(h / lo)
    yield Feature("hl_range", "range", 1, "log(high / low)", "Range"), hl
    yield Feature("upper_shadow", "range", 1, "log(high / max(open, close))", "Upper Shadow"), np.log(h / np.maximum(o, c))
    yield Feature("lower_shadow", "range", 1, "log(min(open, close) / low)", "Lower Shadow"), np.log(np.minimum(o, c) / lo)
    yield Feature("gap", "range", 2, "log(open / close[1])", "Gap"), np.log(o / shift(c, 1))
    yield Feature("close_position", "range", 1, "(close - low) / (high - low)", "Close Position"), safe_div(c - lo, h - lo, 0.5)
    for n in p.range_avg:
        yield Feature(f"range_ratio_{n}", "range", n, "log(range / SMA(range, n))", "Range"), np.clip(log_ratio(np.maximum(hl, 1e-12), ta.SMA(hl, n)), -10, 10)


def calendar(x: Inputs, timeframe: str) -> Produced:
    ts = x.timestamps
    two_pi = 2 * np.pi
    cycles = spec(timeframe).cycles
    if "hour" in cycles:
        hour = ts.hour.to_numpy(dtype=np.float64)
        yield Feature("hour_sin", "calendar", 1, "sin(2 pi hour / 24)", "Hour of Day"), np.sin(two_pi * hour / 24)
        yield Feature("hour_cos", "calendar", 1, "cos(2 pi hour / 24)", "Hour of Day"), np.cos(two_pi * hour / 24)
    if "weekday" in cycles:
        dow = ts.day_of_week.to_numpy(dtype=np.float64)
        yield Feature("dow_sin", "calendar", 1, "sin(2 pi weekday / 7)", "Day of Week"), np.sin(two_pi * dow / 7)
        yield Feature("dow_cos", "calendar", 1, "cos(2 pi weekday / 7)", "Day of Week"), np.cos(two_pi * dow / 7)
    if "month" in cycles:
        month = ts.month.to_numpy(dtype=np.float64) - 1
        yield Feature("month_sin", "calendar", 1, "sin(2 pi month / 12)", "Month of Year"), np.sin(two_pi * month / 12)
        yield Feature("month_cos", "calendar", 1, "cos(2 pi month / 12)", "Month of Year"), np.cos(two_pi * month / 12)


FAMILIES = (overlap, momentum, volume, volatility, cycle, price_transform, statistics, patterns, returns, price_range)


def compute(candles: pd.DataFrame, profile: Profile, timeframe: str) -> tuple[list[Feature], np.ndarray]:
    """All features of one symbol's candles: their descriptions and a (rows x features) float64 matrix."""
    return compute_inputs(Inputs.of(candles), profile, timeframe)


def compute_inputs(x: Inputs, profile: Profile, timeframe: str,
                   keep: slice | np.ndarray | None = None) -> tuple[list[Feature], np.ndarray]:
    """`compute` on candles already in arrays (serving's windows: no DataFrame on the hot path).

    `keep` picks the rows wanted before the matrix is built: serving's stacked windows need one
    row in hundreds, and stacking all of them cost more than the indicators themselves."""
    specs: list[Feature] = []
    columns: list[np.ndarray] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for family in FAMILIES:
            for feature, values in family(x, profile):
                specs.append(feature)
                columns.append(values)
        for feature, values in calendar(x, timeframe):
            specs.append(feature)
            columns.append(values)
    if keep is not None:
        columns = [np.asarray(column)[keep] for column in columns]
    matrix = np.column_stack(columns)  # never empty: `returns` yields logret_1 in every profile
    matrix[~np.isfinite(matrix)] = np.nan
    return specs, matrix
