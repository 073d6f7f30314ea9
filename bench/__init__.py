"""Benchmarks: `python -m bench.fanout` (see docs/benchmarks.md)."""
