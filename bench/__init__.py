"""Stepline benchmarks: `python -m bench [--quick] [--json]` (see README, Performance)."""
