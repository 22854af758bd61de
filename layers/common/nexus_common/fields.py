"""Pydantic field types for the wire.

``WireDecimal`` accepts a decimal string in the JSON number grammar (``"101.25"``, ``"1E1"``)
or a JSON number that was parsed as ``Decimal``/``int`` by ``jsonutil.loads``; it refuses
``float``, booleans, NaN, infinities, Python-only syntax (``"1_000"``, ``"+1"``, ``" 1"``,
non-ASCII digits) and absurd digit counts, exponents and magnitudes (``money.to_decimal``), each
as the pydantic error type ``invalid_decimal`` (the API's 400 ``invalid_decimal`` naming the
field), and writes itself back as the canonical string.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

from nexus_common.events import iso
from nexus_common.money import MoneyError, fmt, to_decimal


def wire_decimal(value: object) -> Decimal:
    """``money.to_decimal`` as a pydantic validator: a refusal is the error type ``invalid_decimal``."""
    try:
        return to_decimal(value)
    except MoneyError as exc:
        raise PydanticCustomError(MoneyError.code, "{reason}", {"reason": str(exc)}) from None


WireDecimal = Annotated[
    Decimal,
    BeforeValidator(wire_decimal),
    PlainSerializer(fmt, return_type=str, when_used="json"),
]

WireDatetime = Annotated[
    AwareDatetime,
    PlainSerializer(iso, return_type=str, when_used="json"),
]
