"""Pydantic field types for the wire.

``WireDecimal`` accepts a decimal string (``"101.25"``) or a JSON number that was parsed as
``Decimal``/``int`` by ``jsonutil.loads``; it refuses ``float``, booleans, NaN, infinities and
absurd magnitudes (``money.to_decimal``), and writes itself back as the canonical string.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator, PlainSerializer

from nexus_common.events import iso
from nexus_common.money import fmt, to_decimal

WireDecimal = Annotated[
    Decimal,
    BeforeValidator(to_decimal),
    PlainSerializer(fmt, return_type=str, when_used="json"),
]

WireDatetime = Annotated[
    AwareDatetime,
    PlainSerializer(iso, return_type=str, when_used="json"),
]
