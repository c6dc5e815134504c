"""The statistics every figure shares, pure numpy: one block bootstrap (`bootstrap.py`: resampled
sums of whole blocks, the interval of a ratio of sums and of a share, blocks by origin time) and
one reliability table (`reliability.py`). Training's calibration and selection, the backtest, the
live accuracy and the public track record, and the benchmarks all use these."""
