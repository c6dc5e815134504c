"""The launcher: `python -m serve_app` as a process supervisor (`main`). It claims its ports and
state directory and ends what a crashed run left (`leftovers`), migrates the database once, sets
Ray's serving processes up (`ray_env`, the HAProxy wrapper in `haproxy/`), deploys the Serve
application (`serve_app.deployments`), shows the replicas' lines (`terminal`), and stops letting
requests in flight finish (`drain`). Nothing under `serve_app/` imports it."""
