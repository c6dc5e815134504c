"""A seeded market simulator so that everything runs offline (`MARKET_SOURCE=synthetic`).

It reproduces the stylised facts that make crypto forecasting hard, so that models and
benchmarks trained on it meet the same difficulties as on real candles:
- fat tails: Student-t innovations (3-5 degrees of freedom);
- volatility clustering: log-volatility follows a persistent AR(1) (stochastic volatility);
- a common market factor every coin loads on (beta 0.5-1.5), itself with clustered volatility;
- listings of different ages, prices from 1e-5 to 1e5, USD volumes over five decades;
- volume that rises with volatility.
Candles are hourly; every other timeframe is aggregated from them, as the API does.

Determinism: the path of a coin up to hour H depends only on the seed and the coin, never on how
far the request reaches, because random draws come in fixed yearly chunks and the filters are
causal. So an incremental fetch returns exactly the candles a full fetch returns.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from market_data.source import GROUPED_COLUMNS, TickerInfo, UnknownTickerError, empty_candles, utc
from market_data.timeframes import aggregate, bucket_start

EPOCH = pd.Timestamp("2019-01-01", tz="UTC")
CHUNK_HOURS = 8760
LAST_LISTING = pd.Timestamp("2025-06-01", tz="UTC")
_SYLLABLES = ["ka", "zo", "ri", "ne", "lu", "ta", "vo", "mi", "sa", "de", "xo", "qu", "fi", "ra",
              "no", "pe", "bi", "gu", "ly", "to", "he", "ja", "wo", "ce", "dy", "mo"]


def _t_unit(rng: np.random.Generator, df: float, n: int) -> np.ndarray:
    """Student-t draws scaled to unit variance."""
    return rng.standard_t(df, n) * np.sqrt((df - 2.0) / df)


def _ar1(innovations: np.ndarray, phi: float) -> np.ndarray:
    return lfilter([1.0], [1.0, -phi], innovations)


class SyntheticMarket:
    """`n_coins` synthetic coins quoted in USD; the same seed gives the same market."""

    name = "synthetic"

    def __init__(self, seed: int = 7, n_coins: int = 600, now: datetime | None = None) -> None:
        self.seed = seed
        self.n_coins = n_coins
        self._now = None if now is None else utc(now)
        self._params = [self._coin_params(i) for i in range(n_coins)]
        self._tickers = _unique_tickers([p["name"] for p in self._params])
        self._index = {t: i for i, t in enumerate(self._tickers)}

    # -- static description of each coin -------------------------------------------------
    def _coin_params(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, i, 0])
        name = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4)))).capitalize()
        span = int((LAST_LISTING - EPOCH) / pd.Timedelta(hours=1))
        # a third of the universe trades since the epoch, the rest listed later
        listing = 0 if rng.random() < 0.35 else int(rng.integers(0, span))
        return {
            "name": name,
            "log_p0": rng.uniform(-5, 5) * np.log(10),
            "beta": rng.uniform(0.5, 1.5),
            "vol": np.exp(rng.normal(np.log(0.006), 0.35)),  # typical hourly idiosyncratic volatility
            "df": rng.uniform(3.0, 5.0),
            "usd_per_hour": 10 ** rng.uniform(2.5, 7.5),
            "listing_hour": listing,
        }

    def now(self) -> pd.Timestamp:
        return self._now if self._now is not None else pd.Timestamp(datetime.now(timezone.utc))

    def list_tickers(self) -> list[TickerInfo]:
        now_hour = self._hour_index(self.now())
        return [
            TickerInfo(ticker=t, name=f"{p['name']} - United States Dollar", base_currency=t[2:-3], quote_currency="USD")
            for t, p in zip(self._tickers, self._params)
            if p["listing_hour"] <= now_hour
        ]

    # -- paths -------------------------------------------------------------------------------
    @staticmethod
    def _hour_index(moment: pd.Timestamp) -> int:
        return int((moment - EPOCH) // pd.Timedelta(hours=1))

    @lru_cache(maxsize=8)
    def _market_factor(self, chunks: int) -> tuple[np.ndarray, np.ndarray]:
        eps, vol_innov = [], []
        for c in range(chunks):
            rng = np.random.default_rng([self.seed, 1_000_000, c])
            eps.append(_t_unit(rng, 4.0, CHUNK_HOURS))
            vol_innov.append(rng.standard_normal(CHUNK_HOURS))
        log_vol = np.log(0.004) + _ar1(0.05 * np.concatenate(vol_innov), 0.995)
        return np.exp(log_vol) * np.concatenate(eps), log_vol

    @lru_cache(maxsize=64)
    def _hourly(self, i: int, chunks: int) -> pd.DataFrame:
        """Every hourly candle of coin `i` from its listing to the end of chunk `chunks`."""
        p = self._params[i]
        market, _ = self._market_factor(chunks)
        draws = [np.random.default_rng([self.seed, i, c + 1]) for c in range(chunks)]
        eps = np.concatenate([_t_unit(r, p["df"], CHUNK_HOURS) for r in draws])
        rest = np.concatenate([r.standard_normal((4, CHUNK_HOURS)) for r in draws], axis=1)
        rel_log_vol = _ar1(0.07 * rest[0], 0.99)
        sigma = p["vol"] * np.exp(rel_log_vol)
        returns = p["beta"] * market + sigma * eps
        start = p["listing_hour"]
        if start >= chunks * CHUNK_HOURS:  # not listed yet at the end of these chunks
            return empty_candles()
        returns = returns[start:]
        sigma, rest = sigma[start:], rest[:, start:]
        log_close = p["log_p0"] + np.cumsum(returns)
        log_open = np.concatenate([[p["log_p0"]], log_close[:-1]])
        spread = sigma * 0.6
        log_high = np.maximum(log_open, log_close) + np.abs(rest[1]) * spread
        log_low = np.minimum(log_open, log_close) - np.abs(rest[2]) * spread
        o, h, lo, c = np.exp(log_open), np.exp(log_high), np.exp(log_low), np.exp(log_close)
        vwap = np.clip((o + h + lo + c) / 4.0, lo, h)
        total_sigma = np.sqrt((p["beta"] * 0.004) ** 2 + sigma**2)
        usd = p["usd_per_hour"] * (total_sigma / total_sigma.mean()) ** 1.5 * np.exp(0.3 * rest[3])
        stamps = EPOCH + pd.to_timedelta(np.arange(start, chunks * CHUNK_HOURS), unit="h")
        return pd.DataFrame({"timestamp": stamps.astype("datetime64[ms, UTC]"), "open": o, "high": h,
                             "low": lo, "close": c, "volume": usd / vwap, "vwap": vwap})

    def _coin(self, ticker: str) -> int:
        try:
            return self._index[ticker]
        except KeyError:
            raise UnknownTickerError(f"synthetic market has no ticker {ticker!r}") from None

    def aggregates(self, ticker: str, timeframe: str, start: datetime, end: datetime) -> pd.DataFrame:
        i = self._coin(ticker)
        start_ts, end_ts = utc(start), min(utc(end), self.now())
        first = bucket_start(pd.Series([start_ts]), timeframe).iloc[0]
        if end_ts < first:
            return empty_candles()
        last_hour = self._hour_index(end_ts)
        hourly = self._hourly(i, last_hour // CHUNK_HOURS + 1)
        hourly = hourly[hourly["timestamp"] >= first]
        if timeframe == "1h":
            candles = hourly[hourly["timestamp"] <= end_ts]
        else:  # a coarse candle still open at `end` holds only the hours known by then, as the API's would
            candles = aggregate(hourly[hourly["timestamp"] < end_ts], timeframe)
        candles = candles[(candles["timestamp"] >= start_ts) & (candles["timestamp"] <= end_ts)]
        return candles.reset_index(drop=True) if not candles.empty else empty_candles()

    def grouped_daily(self, day: date) -> pd.DataFrame:
        start = pd.Timestamp(day, tz="UTC")
        day_end = start + pd.Timedelta(days=1) - pd.Timedelta(milliseconds=1)  # the whole day, as known after it
        rows = []
        for ticker in self._tickers:
            candle = self.aggregates(ticker, "1d", start, day_end)
            if not candle.empty:
                rows.append(candle.assign(ticker=ticker))
        if not rows:
            return pd.DataFrame(columns=GROUPED_COLUMNS)
        return pd.concat(rows, ignore_index=True)[GROUPED_COLUMNS]


def _unique_tickers(names: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for name in names:
        base = name.upper()[:5]
        code, n = base, 1
        while code in seen:
            n += 1
            code = f"{base[:4]}{n}"
        seen.add(code)
        out.append(f"X:{code}USD")
    return out

