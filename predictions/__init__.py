"""The prediction domain, without HTTP or Ray in it: symbols and their fresh candles
(`market`), and the forecast flow that caches, runs the timeframe's model and stores what it
served (`service`). The HTTP routers (`serve_app.routers`) call in here; serving a model
(replicas, Ray) stays in `serve_app`.
"""
