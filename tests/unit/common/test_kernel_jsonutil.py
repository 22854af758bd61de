"""jsonutil: no float ever, strict input, canonical output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from nexus_common.jsonutil import JSONError, dumps, loads


def test_numbers_with_a_fraction_are_decimal_and_integers_stay_int() -> None:
    # GIVEN a body with a price and a quantity WHEN it is parsed
    data = loads('{"price": 101.10, "quantity": 3, "tiny": 1e-8}')
    # THEN no float appears
    assert data == {"price": Decimal("101.10"), "quantity": 3, "tiny": Decimal("1E-8")}
    assert isinstance(data["price"], Decimal)
    assert isinstance(data["quantity"], int)


def test_bytes_are_accepted_as_utf8() -> None:
    assert loads('{"name": "Zoë"}'.encode()) == {"name": "Zoë"}


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}'])
def test_nan_and_infinity_are_refused(text: str) -> None:
    with pytest.raises(JSONError, match="not a number"):
        loads(text)


def test_duplicate_keys_are_refused_at_any_depth() -> None:
    with pytest.raises(JSONError, match="duplicate key 'price'"):
        loads('{"order": {"price": "1", "price": "2"}}')


def test_deep_nesting_is_refused_before_parsing() -> None:
    with pytest.raises(JSONError, match="deeper than 32"):
        loads("[" * 33 + "]" * 33)
    with pytest.raises(JSONError):
        loads("[" * 100_000)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = '{"note": "' + "[" * 200 + '\\"{{{"}'
    assert loads(text)["note"].startswith("[[[")


@pytest.mark.parametrize("text", ["", "{", '{"a": 1,}', "{'a': 1}", '{"a": 0x10}', "9" * 5000])
def test_malformed_json_raises_a_client_safe_error(text: str) -> None:
    with pytest.raises(JSONError, match=r"malformed JSON|not a valid number"):
        loads(text)


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(JSONError, match="UTF-8"):
        loads(b'{"a": "\xff"}')


def test_dumps_writes_decimals_as_canonical_strings_and_datetimes_as_utc() -> None:
    # GIVEN decimals in various forms and an aware datetime in another zone
    paris = timezone(timedelta(hours=1))
    value = {
        "price": Decimal("101.5000"),
        "qty": Decimal("1E+2"),
        "small": Decimal("0.00000001"),
        "at": datetime(2026, 1, 5, 15, 30, tzinfo=paris),
        "n": 3,
    }
    # WHEN it is written THEN decimals are plain strings and the time is UTC with Z
    assert dumps(value) == (
        '{"price":"101.5","qty":"100","small":"0.00000001",'
        '"at":"2026-01-05T14:30:00.000000Z","n":3}'
    )


def test_dumps_refuses_naive_datetimes_and_nan() -> None:
    with pytest.raises(ValueError, match="naive"):
        dumps({"at": datetime(2026, 1, 5)})  # noqa: DTZ001
    with pytest.raises(ValueError):
        dumps({"x": Decimal("NaN")})
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


def test_round_trip_keeps_values_exact() -> None:
    original = {"price": Decimal("0.1"), "at": datetime(2026, 1, 5, tzinfo=UTC)}
    assert loads(dumps(original)) == {"price": "0.1", "at": "2026-01-05T00:00:00.000000Z"}
