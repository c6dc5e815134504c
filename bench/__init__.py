"""Benchmarks: each prints its figure against a plain baseline measured in the same run."""
