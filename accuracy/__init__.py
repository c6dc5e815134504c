"""Accuracy of served forecasts: every stored prediction step scored against the candle that
then closed, aggregated per model, timeframe, horizon and day, with naive beside the model.

`scoring` is pure (DataFrames in, DataFrames out); `tracker` is the edge that reads the
database, the lake and the market source and writes the scores and aggregates back.
"""
