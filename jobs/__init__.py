"""Thin entry points (`python -m jobs.<name>`): parse arguments, call library code."""
