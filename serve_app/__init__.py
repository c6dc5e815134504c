"""Serving: the Ray Serve application behind one HTTP ingress."""
