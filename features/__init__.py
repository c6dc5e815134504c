"""Features: scale-free TA-Lib indicators computed from candles, without lookahead."""
