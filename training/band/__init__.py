"""The 80 % band, in three files a reader follows from fit to served forecast:
- `band.py`: `Band`, the frozen record of quantiles fitted on validation, and `Band.served`, the
  one function that turns it into a served band for any centre;
- `scale.py`: the volatility models whose scale the quantiles are in (`BandScale`);
- `market.py`: the market-wide adaptation that moves every coin's band by how the market's
  coins have been covered since the fit (`MarketAdaptation` for serving, `MarketReplay` for
  backtests).
`quantiles.py` fits the quantiles with their margin for a regime change, `choice.py` picks the
volatility model on validation.
"""
