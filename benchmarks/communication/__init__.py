"""Communication benchmark: bytes and accuracy of update compression, cost of HE aggregation.

Run with ``python -m benchmarks.communication`` (``--quick`` for a smoke run); results go to
``benchmarks/communication/results.json`` and ``accuracy_vs_mb.png``, reported in ``RESULTS.md``.
"""
