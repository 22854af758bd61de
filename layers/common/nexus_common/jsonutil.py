"""JSON in and out, without ``float`` ever touching a number.

``loads`` parses every JSON number with a fraction or exponent as ``Decimal`` (integers stay
``int``), and refuses what a trading API must not accept silently: ``NaN``/``Infinity``, objects
with duplicate keys (which one would win?), and nesting deeper than ``max_depth``.

``dumps`` writes ``Decimal`` in its canonical string form (``money.fmt``: ``"101.5"``, never
``1.015E+2``) and datetimes as ISO-8601 UTC with a ``Z`` suffix; naive datetimes are refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from nexus_common.events import iso
from nexus_common.money import fmt

DEFAULT_MAX_DEPTH: Final = 32

_STRING_LITERAL: Final = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")


class JSONError(ValueError):
    """The text is not acceptable JSON. ``str(exc)`` is safe to show to a client."""


def _reject_constant(name: str) -> Any:
    raise JSONError(f"{name} is not a number JSON accepts")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JSONError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _max_depth(text: str) -> int:
    """Deepest bracket nesting of ``text``, ignoring brackets inside string literals."""
    brackets = _NOT_BRACKET.sub("", _STRING_LITERAL.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def loads(data: str | bytes | bytearray, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse JSON strictly: Decimal for non-integers, no NaN/Infinity, no duplicate keys."""
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError("body is not valid UTF-8") from exc
    else:
        text = data
    if _max_depth(text) > max_depth:
        raise JSONError(f"JSON nesting deeper than {max_depth} levels")
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicates,
        )
    except JSONError:
        raise
    except RecursionError as exc:
        raise JSONError("JSON nesting too deep") from exc
    except ValueError as exc:
        # json.JSONDecodeError and int() digit-limit errors; keep the position, not the input.
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else "not a valid number"
        raise JSONError(f"malformed JSON: {message}") from exc


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("NaN and Infinity cannot be written as JSON")
        return fmt(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON; Decimal as canonical string, datetime as ISO UTC; NaN refused."""
    return json.dumps(
        value,
        default=_default,
        allow_nan=False,
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=sort_keys,
    )
