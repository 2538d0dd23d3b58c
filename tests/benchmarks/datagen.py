"""``python -m tests.benchmarks.datagen --events 1000000 --days 365``: load the benchmark data set.

The generator lives in :mod:`tests.support.datagen`, which tests and benchmarks import; this module keeps the
documented command working.
"""

from __future__ import annotations

import sys

from tests.support.datagen import Generated, generate, main

__all__ = ["Generated", "generate", "main"]

if __name__ == "__main__":
    sys.exit(main())
