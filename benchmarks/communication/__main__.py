"""Entry point: ``python -m benchmarks.communication [--quick] [--skip-he] [--skip-compression]``."""

from benchmarks.communication.run import main

main()
