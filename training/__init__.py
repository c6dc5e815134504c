"""Training: datasets, the per-timeframe models, the forecaster, evaluation and sweeps."""
