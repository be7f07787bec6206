"""Asynchronous FL benchmark (``python -m benchmarks.async``)."""
