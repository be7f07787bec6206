"""Transport benchmark: the gRPC deployment path vs a raw TCP socket on loopback.

Run ``python -m benchmarks.transport`` (``--help`` for sizes and repetitions). See RESULTS.md.
"""
