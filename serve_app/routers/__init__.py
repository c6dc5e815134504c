"""One router per domain of the HTTP API; `serve_app.app.create_app` includes them all."""
