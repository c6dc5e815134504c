"""Where the work meets Ray: one fan-out over symbols (`engine.symbols.map_symbols`, Ray Data),
the layout of Ray Train fits (`engine.layout`: workers, CPUs, checkpoints, restarts).

The computing code (features, training rows, forecasters, calibration) takes DataFrames and
arrays and never imports Ray; the jobs choose, with `use_ray`, whether a stage runs here on the
cluster or as the plain loop in the calling process.
"""
