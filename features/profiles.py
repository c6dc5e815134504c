"""Indicator windows per timeframe.

KAMA is left out: its slowest smoothing constant, (2/31)^2, remembers a seed for thousands of
candles, so a value computed from a serving window would not match the training value. Wilder
smoothers (RSI, ATR) stay at 21 candles or fewer for the same reason.

Hourly to daily candles have years of history per coin, so indicators use the usual windows
(up to 200 candles). Weekly and monthly candles do not: the lake keeps five years, i.e. 260 weeks
or 60 months, and a 200-candle warm-up would leave nothing to learn from. Those timeframes use a
compact profile with windows up to 12 candles, so the same feature families still apply.

`warmup` is the number of leading candles whose features are not yet trustworthy: the longest
window, plus time for recursive smoothers (EMA, Wilder) to forget their seed. `serving_window`
is how many recent candles serving fetches: warm-up plus room for the 30 predicted candles.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from market_data.timeframes import spec


@dataclass(frozen=True)
class Profile:
    name: str
    ma: tuple[int, ...]  # simple moving averages
    ema: tuple[int, ...]  # recursive: kept short enough to forget their seed within the warm-up
    wma: tuple[int, ...]
    dema: tuple[int, ...]
    tema: tuple[int, ...]
    trima: tuple[int, ...]
    t3: tuple[int, ...]
    bbands: tuple[int, ...]
    mid: tuple[int, ...]
    donchian: tuple[int, ...]
    rsi: tuple[int, ...]
    stoch: tuple[int, ...]
    willr: tuple[int, ...]
    cci: tuple[int, ...]
    mfi: tuple[int, ...]
    adx: tuple[int, ...]
    aroon: tuple[int, ...]
    cmo: tuple[int, ...]
    macd: tuple[tuple[int, int, int], ...]
    ppo: tuple[tuple[int, int], ...]
    trix: tuple[int, ...]
    ultosc: tuple[int, int, int]
    flow: tuple[int, ...]  # OBV / accumulation-distribution changes over a window
    vol_ratio: tuple[int, ...]
    vol_ema_ratio: tuple[int, ...]
    vol_z: tuple[int, ...]
    vwap_window: tuple[int, ...]
    natr: tuple[int, ...]
    ret_std: tuple[int, ...]
    range_vol: tuple[int, ...]  # Parkinson and Garman-Klass estimators
    linreg: tuple[int, ...]
    correl: tuple[int, ...]
    zscore: tuple[int, ...]
    moments: tuple[int, ...]
    returns: tuple[int, ...]
    range_avg: tuple[int, ...]
    cycle: bool  # Hilbert-transform indicators need 63+ candles of history
    warmup: int
    serving_window: int
    # Features of each candle computed from the serving window that ends at it, window by window,
    # rather than from the whole history: where the window is too short for the recursive
    # smoothers to forget where they started (monthly candles), this is the only way training
    # rows and served features stay equal.
    windowed: bool = False

    @property
    def volatility_window(self) -> int:
        """Candles of the recent one-candle volatility that scales bands, confidence and direct targets."""
        return self.ret_std[2]

    @property
    def volatility_feature(self) -> str:
        return f"ret_std_{self.volatility_window}"


STANDARD = Profile(
    name="standard",
    ma=(5, 10, 20, 50, 100, 200), ema=(5, 10, 20, 30), wma=(10, 20, 50), dema=(10, 20), tema=(10, 20),
    trima=(10, 30), t3=(5,), bbands=(20, 50), mid=(14,), donchian=(20, 55),
    rsi=(7, 14, 21), stoch=(14,), willr=(14, 28), cci=(14, 20), mfi=(14, 28), adx=(14,), aroon=(14, 25),
    cmo=(14,), macd=((12, 26, 9), (5, 35, 5)), ppo=((12, 26),), trix=(15,), ultosc=(7, 14, 28),
    flow=(10, 20), vol_ratio=(5, 10, 20, 50), vol_ema_ratio=(10, 20), vol_z=(20,), vwap_window=(10, 20),
    natr=(7, 14, 21), ret_std=(5, 10, 20, 50), range_vol=(20,), linreg=(14, 50), correl=(30,), zscore=(20,),
    moments=(50,), returns=(3, 5, 10, 20, 50, 100), range_avg=(20,), cycle=True,
    warmup=250, serving_window=320,
)

COMPACT = Profile(
    name="compact",
    ma=(3, 5, 8, 12), ema=(3, 5, 8), wma=(5, 10), dema=(5, 8), tema=(3, 5), trima=(5, 10),
    t3=(3,), bbands=(5, 10), mid=(5,), donchian=(5, 12), rsi=(4, 7, 12), stoch=(5,), willr=(5, 10),
    cci=(5, 10), mfi=(5, 10), adx=(5,), aroon=(5, 10), cmo=(5,), macd=((3, 8, 3), (5, 12, 4)), ppo=((3, 8),),
    trix=(4,), ultosc=(3, 6, 12), flow=(5, 10), vol_ratio=(3, 5, 8, 12), vol_ema_ratio=(5, 10), vol_z=(10,),
    vwap_window=(5, 10), natr=(3, 5, 10), ret_std=(3, 5, 8, 12), range_vol=(10,), linreg=(5, 10),
    correl=(10,), zscore=(10,), moments=(12,), returns=(2, 3, 5, 8, 12), range_avg=(10,), cycle=False,
    warmup=24, serving_window=160,
)

# Weekly candles: a serving window of 160 (about three years): with 60, Wilder and EMA smoothers of
# 12 candles still remember where the window began, and served features differed from the training
# rows by up to 6 % (RSI, NATR, MACD); with 160 they agree to 1e-6 (tests/test_parity.py).
# Monthly candles are few (five years of retention hold 60): a serving window of 30 (the warm-up
# and a little more), so that a coin listed for two and a half years can be forecast; the
# smoothers cannot forget in 30 candles, so every monthly feature row is computed from its own
# 30-candle window, in training as at serving (`windowed`).
MONTHLY = replace(COMPACT, name="monthly", serving_window=30, windowed=True)

PROFILES: dict[str, Profile] = {p.name: p for p in (STANDARD, COMPACT, MONTHLY)}


def profile_for(timeframe: str) -> Profile:
    """The profile the timeframe's record names (`market_data.timeframes`)."""
    return PROFILES[spec(timeframe).profile]
