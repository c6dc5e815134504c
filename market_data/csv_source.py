"""`MARKET_SOURCE=csv:<dir>`: candles from CSV files, one per symbol (and optionally timeframe).

Two layouts are read: a Binance kline export (`open_time,open,high,low,close,volume,close_time,
quote_asset_volume,…`, VWAP = quote_asset_volume / volume) and a plain file with a
`timestamp|date|open_time` column, `open, high, low, close, volume` and optionally `vwap`.
Times are ISO strings or epoch milliseconds. Files are `<SYMBOL>.csv` or `<SYMBOL>_<tf>.csv`;
the ticker is `X:<SYMBOL>`, and a timeframe without its own file is aggregated from the finest
file present (a timeframe finer than every file cannot be made, and comes back empty).
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

import pandas as pd

from market_data.cleaning import clean_candles
from market_data.source import GROUPED_COLUMNS, TickerInfo, UnknownTickerError, empty_candles, utc
from market_data.timeframes import TIMEFRAMES, aggregate

log = logging.getLogger(__name__)

_QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "TUSD", "USD", "EUR", "GBP", "BTC", "ETH")
_FILE_RE = re.compile(r"^(?P<symbol>[A-Za-z0-9.-]+?)(?:_(?P<tf>" + "|".join(TIMEFRAMES) + r"))?\.csv$")
_TIME_COLUMNS = ("timestamp", "date", "open_time", "time")


def split_pair(symbol: str) -> tuple[str | None, str | None]:
    """`BTCUSDT` -> (`BTC`, `USDT`); unknown quotes give (symbol, None)."""
    for quote in _QUOTES:
        if symbol.upper().endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)].upper(), quote
    return symbol.upper(), None


def read_candle_csv(path: Path) -> pd.DataFrame:
    """Parse one CSV file of either layout into uncleaned candle columns."""
    raw = pd.read_csv(path)
    columns = {c.lower().strip(): c for c in raw.columns}
    time_col = next((columns[c] for c in _TIME_COLUMNS if c in columns), None)
    needed = ["open", "high", "low", "close", "volume"]
    if time_col is None or any(c not in columns for c in needed):
        raise ValueError(
            f"{path}: expected a time column ({'|'.join(_TIME_COLUMNS)}) and {', '.join(needed)}; "
            f"found {list(raw.columns)}"
        )
    stamps = raw[time_col]
    if pd.api.types.is_numeric_dtype(stamps):
        stamps = pd.to_datetime(stamps, unit="ms", utc=True)
    else:
        stamps = pd.to_datetime(stamps, utc=True, format="mixed")
    frame = pd.DataFrame({"timestamp": stamps, **{c: raw[columns[c]] for c in needed}})
    if "vwap" in columns:
        frame["vwap"] = raw[columns["vwap"]]
    elif "quote_asset_volume" in columns:
        volume = raw[columns["volume"]]
        frame["vwap"] = (raw[columns["quote_asset_volume"]] / volume).where(volume > 0)
    return frame


class CsvSource:
    name = "csv"

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ValueError(f"MARKET_SOURCE csv directory {self.directory} does not exist")
        self._files: dict[str, dict[str, Path]] = {}
        for path in sorted(self.directory.glob("*.csv")):
            match = _FILE_RE.match(path.name)
            if not match:
                log.warning("csv source: ignoring %s (not <SYMBOL>.csv or <SYMBOL>_<tf>.csv)", path)
                continue
            symbol = match.group("symbol").upper()
            # a bare <SYMBOL>.csv: its timeframe is inferred from the spacing of its candles
            self._files.setdefault(symbol, {})[match.group("tf") or "?"] = path

    def list_tickers(self) -> list[TickerInfo]:
        out = []
        for symbol in sorted(self._files):
            base, quote = split_pair(symbol)
            out.append(TickerInfo(ticker=f"X:{symbol}", name=f"{base} / {quote or '?'}", base_currency=base,
                                  quote_currency=quote))
        return out

    def _symbol(self, ticker: str) -> str:
        symbol = ticker.split(":", 1)[-1].upper()
        if symbol not in self._files:
            raise UnknownTickerError(f"csv source {self.directory} has no file for ticker {ticker!r}")
        return symbol

    @lru_cache(maxsize=256)
    def _load(self, symbol: str, key: str) -> tuple[str, pd.DataFrame]:
        """The cleaned candles of one file and the timeframe they turned out to be."""
        path = self._files[symbol][key]
        candles, _ = clean_candles(read_candle_csv(path), label=str(path))
        if key != "?":
            return key, candles
        return _infer_timeframe(candles, path), candles

    def _finest(self, symbol: str) -> list[tuple[str, pd.DataFrame]]:
        loaded = [self._load(symbol, key) for key in self._files[symbol]]
        return sorted(loaded, key=lambda item: TIMEFRAMES.index(item[0]))

    def aggregates(self, ticker: str, timeframe: str, start: datetime, end: datetime) -> pd.DataFrame:
        symbol = self._symbol(ticker)
        available = self._finest(symbol)
        exact = [c for tf, c in available if tf == timeframe]
        if exact:
            candles = exact[0]
        else:
            finer = [(tf, c) for tf, c in available if TIMEFRAMES.index(tf) < TIMEFRAMES.index(timeframe)]
            if not finer:
                log.info("csv source: %s has no candles as fine as %s", ticker, timeframe)
                return empty_candles()
            fine = finer[0][1]
            # a coarse candle still open at `end` holds only the finer candles opened before it
            candles = aggregate(fine[fine["timestamp"] < utc(end)], timeframe)
        selected = candles[(candles["timestamp"] >= utc(start)) & (candles["timestamp"] <= utc(end))]
        return selected.reset_index(drop=True)

    def grouped_daily(self, day: date) -> pd.DataFrame:
        start = pd.Timestamp(day, tz="UTC")
        day_end = start + pd.Timedelta(days=1) - pd.Timedelta(milliseconds=1)  # the whole day, as known after it
        rows = []
        for symbol in sorted(self._files):
            candle = self.aggregates(f"X:{symbol}", "1d", start, day_end)
            if not candle.empty:
                rows.append(candle.assign(ticker=f"X:{symbol}"))
        if not rows:
            return pd.DataFrame(columns=GROUPED_COLUMNS)
        return pd.concat(rows, ignore_index=True)[GROUPED_COLUMNS]


def _infer_timeframe(candles: pd.DataFrame, path: Path) -> str:
    if len(candles) < 2:
        return "1d"
    step = candles["timestamp"].diff().median()
    for tf, hours in (("1h", 1), ("4h", 4), ("1d", 24), ("1w", 168)):
        if step <= pd.Timedelta(hours=hours) * 1.01:
            return tf
    if step <= pd.Timedelta(days=32):
        return "1m"
    raise ValueError(f"{path}: candles are {step} apart, coarser than any timeframe")
