"""``python -m e2e_launch GATE fedloom-args...``: run the real ``fedloom`` CLI once the file GATE exists.

The imports (torch, scikit-learn, fedloom) happen first, so a replacement process (a server to be
restarted with --resume) is ready the moment the test kills the process it replaces.
"""

from __future__ import annotations

import os
import sys
import time

import sklearn.datasets  # noqa: F401 - warm the import the server's central evaluation needs

import fedloom.net.deploy  # noqa: F401
import fedloom.simulation  # noqa: F401
from fedloom.cli import main

if __name__ == "__main__":
    gate, argv = sys.argv[1], sys.argv[2:]
    while not os.path.exists(gate):
        time.sleep(0.05)
    main(argv)
