"""The FIX application tests run on the in-memory venue of the orders tests (the real
``OrderService`` and matching engine, in process): its module (``orders_fakes``) lives beside
those tests."""

from __future__ import annotations

import sys
from pathlib import Path

ORDERS_TESTS = str(Path(__file__).resolve().parents[1] / "orders")
if ORDERS_TESTS not in sys.path:
    sys.path.append(ORDERS_TESTS)
