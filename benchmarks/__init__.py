"""Reproducible benchmarks: ``python -m benchmarks.<name>``; results in ``benchmarks/<name>/RESULTS.md``."""
