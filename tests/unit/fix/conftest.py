"""The FIX application tests run on the in-memory venue of the order-entry tests (the real
``OrderService`` and matching engine, in process): its module lives beside those tests."""

from __future__ import annotations

import sys
from pathlib import Path

FUNCTIONS_TESTS = str(Path(__file__).resolve().parents[1] / "functions")
if FUNCTIONS_TESTS not in sys.path:
    sys.path.append(FUNCTIONS_TESTS)
