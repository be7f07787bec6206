"""Benchmark: the same federation in-process, on a private local Ray, and on a local `ray start` cluster."""
