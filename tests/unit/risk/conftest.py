"""The risk consumer's tests use the in-memory venue and the moto worlds of the orders tests (the
real ``OrderService`` and pre-trade risk reserve the routed parent): their module
(``orders_fakes``) lives beside those tests."""

from __future__ import annotations

import sys
from pathlib import Path

ORDERS_TESTS = str(Path(__file__).resolve().parents[1] / "orders")
if ORDERS_TESTS not in sys.path:
    sys.path.append(ORDERS_TESTS)
