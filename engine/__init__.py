"""Where the work meets Ray, and only here: one fan-out over symbols (`engine.symbols`, Ray Data),
ingestion under one shared request budget (`engine.ingest`, tasks and an actor), the layout of
fits (`engine.layout`: workers, CPUs, checkpoints, restarts), Ray Train and Ray tasks for every
model (`engine.train`: report, resume, trainers) and Ray Tune sweeps (`engine.tune`).

The computing code (features, training rows, models, forecasters, calibration) takes DataFrames
and arrays and never imports Ray; the jobs choose, with `use_ray`, whether a stage runs on the
cluster or as the plain loop in the calling process, and `RunOptions.placement` decides, in one
place, where each fit runs (here, one Ray task, a Ray Train worker group): the models give the
bodies (`engine.train.fit_where`, `engine.symbols.gather_symbols`) and never branch on Ray.
"""
