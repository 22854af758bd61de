"""The FIX 4.4 codec: each validation rule with its standard outcome (garbled: dropped; another
BeginString: logout; a field rule: Reject with its SessionRejectReason and RefTagID; an
application type we do not take: BusinessMessageReject), encoding, and the TCP frame splitter."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import quickfix as fix
from fix_peer import FIX44_XML
from hypothesis import given, settings
from hypothesis import strategies as st
from nexus_fix import codec
from nexus_fix.codec import (
    FrameSplitter,
    Garbled,
    IncorrectBeginString,
    Message,
    SessionReject,
    UnsupportedMessageType,
    ValidationOptions,
    decode,
    parse,
    validate,
)

HEADER = ((49, "CLIENT1"), (56, "NEXUS"), (34, "2"), (52, "20261203-06:50:00.000"))
ORDER = ((11, "C1"), (1, "ACC1"), (55, "AAPL"), (54, "1"), (60, "20261203-06:50:00.000"), (38, "100"),
         (40, "2"), (44, "150.25"), (59, "0"))


def frame(msg_type: str = "D", *fields: tuple[int, str], header: tuple[tuple[int, str], ...] = HEADER) -> bytes:
    """A frame written field by field exactly as given (no reordering), with a right BodyLength
    and CheckSum unless the caller breaks them afterwards."""
    body = f"35={msg_type}\x01" + "".join(f"{t}={v}\x01" for t, v in (*header, *fields))
    head = f"8=FIX.4.4\x019={len(body)}\x01"
    raw = (head + body).encode("latin-1")
    return raw + b"10=%03d\x01" % (sum(raw) % 256)


def rejected(raw: bytes, options: ValidationOptions = codec.DEFAULT_OPTIONS) -> tuple[int, int | None, str]:
    with pytest.raises(SessionReject) as exc:
        decode(raw, options)
    return exc.value.reason, exc.value.ref_tag, exc.value.text


def test_a_valid_new_order_single_parses_in_wire_order_with_its_values() -> None:
    # GIVEN a NewOrderSingle; WHEN it is decoded
    msg = decode(frame("D", *ORDER))
    # THEN fields come in wire order and values read back, prices as exact decimals
    assert msg.msg_type == "D"
    assert [t for t, _ in msg.fields][:3] == [8, 9, 35]
    assert msg.get(11) == "C1"
    assert codec.parse_decimal(msg.get(44) or "") == Decimal("150.25")
    assert codec.parse_utc_timestamp(msg.get(60) or "") == datetime(2026, 12, 3, 6, 50, tzinfo=UTC)


def test_the_encoder_writes_what_quickfix_accepts_with_validation() -> None:
    # GIVEN a message built by the application, fields in any order, a Decimal price
    msg = Message.new("D", *ORDER[:7], (44, Decimal("150.2500")), (59, "0"))
    for tag, value in reversed(HEADER):
        msg.fields.insert(1, (tag, value))
    # WHEN encoded
    raw = msg.encode()
    # THEN QuickFIX's own parser, validating against FIX44.xml, accepts it, and it round-trips
    dd = fix.DataDictionary(str(FIX44_XML))
    parsed = fix.Message(raw.decode("latin-1"), dd, True)
    assert parsed.getField(44) == "150.2500"
    assert decode(raw).get(44) == "150.2500"


def test_a_decimal_in_exponent_form_goes_on_the_wire_in_plain_notation() -> None:
    assert codec.fix_value(Decimal("1E+2")) == "100"
    assert codec.fix_value(Decimal("0.00000001")) == "0.00000001"
    with pytest.raises(ValueError):
        codec.fix_value(Decimal("NaN"))


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(frame("D", *ORDER).replace(b"10=", b"10=9", 1)[:-1][:-1] + b"\x01", id="checksum-digits"),
        pytest.param(frame("D", *ORDER)[:-4] + b"000\x01", id="checksum-value"),
        pytest.param(frame("D", *ORDER).replace(b"9=", b"9=1", 1), id="body-length"),
        pytest.param(b"9=5\x018=FIX.4.4\x0135=0\x0110=000\x01", id="body-length-first"),
        pytest.param(frame("D", *ORDER).replace(b"\x0135=D", b"\x0155=X", 1), id="msgtype-not-third"),
        pytest.param(frame("D", *ORDER).replace(b"\x0111=C1", b"\x01xx=C1", 1), id="non-numeric-tag"),
        pytest.param(frame("D", *ORDER).replace(b"\x0111=C1", b"\x0111C1", 1), id="no-equals"),
    ],
)
def test_a_garbled_frame_is_refused_as_garbled(raw: bytes) -> None:
    # GIVEN a frame whose envelope is broken; WHEN parsed; THEN it is garbled (dropped by the session)
    with pytest.raises(Garbled):
        parse(raw)


def test_a_garbled_frame_with_a_recomputed_checksum_is_still_garbled_when_the_length_lies() -> None:
    raw = frame("0").replace(b"9=", b"9=9", 1)
    body = raw[:-7]
    raw = body + b"10=%03d\x01" % (sum(body) % 256)
    with pytest.raises(Garbled):
        parse(raw)


def test_another_begin_string_is_incorrect_begin_string_not_garbled() -> None:
    raw = frame("0").replace(b"FIX.4.4", b"FIX.4.2")
    body = raw[:-7]
    raw = body + b"10=%03d\x01" % (sum(body) % 256)
    with pytest.raises(IncorrectBeginString):
        parse(raw)


@pytest.mark.parametrize(
    ("fields", "reason", "ref_tag"),
    [
        pytest.param([f for f in ORDER if f[0] != 11], codec.REQUIRED_TAG_MISSING, 11, id="required"),
        pytest.param([*ORDER, (112, "T")], codec.TAG_NOT_DEFINED_FOR_MESSAGE, 112, id="not-for-type"),
        pytest.param([*ORDER, (4999, "x")], codec.INVALID_TAG_NUMBER, 4999, id="invalid-tag"),
        pytest.param([*ORDER, (5001, "x")], codec.INVALID_TAG_NUMBER, 5001, id="user-defined-validated"),
        pytest.param([*ORDER[:-1], (59, "")], codec.TAG_WITHOUT_VALUE, 59, id="empty"),
        pytest.param([*ORDER[:3], (54, "Z"), *ORDER[4:]], codec.VALUE_OUT_OF_RANGE, 54, id="enum"),
        pytest.param([*ORDER[:3], (54, "12"), *ORDER[4:]], codec.INCORRECT_DATA_FORMAT, 54, id="char"),
        pytest.param([*ORDER[:5], (38, "1e3"), *ORDER[6:]], codec.INCORRECT_DATA_FORMAT, 38, id="qty"),
        pytest.param([*ORDER[:7], (44, "15O.25"), *ORDER[8:]], codec.INCORRECT_DATA_FORMAT, 44, id="price"),
        pytest.param([*ORDER[:4], (60, "20261303-06:50:00"), *ORDER[5:]], codec.INCORRECT_DATA_FORMAT, 60,
                     id="timestamp"),
        pytest.param([*ORDER, (110, "ten")], codec.INCORRECT_DATA_FORMAT, 110, id="qty-minqty"),
        pytest.param([*ORDER, (18, "6 ~")], codec.VALUE_OUT_OF_RANGE, 18, id="multi-value-enum"),
        pytest.param([*ORDER, (55, "MSFT")], codec.TAG_APPEARS_MORE_THAN_ONCE, 55, id="repeated"),
        pytest.param([*ORDER, (97, "Y")], codec.TAG_OUT_OF_ORDER, 97, id="header-after-body"),
        pytest.param([*ORDER[:2], (93, "1"), (89, "x"), *ORDER[2:]], codec.TAG_OUT_OF_ORDER, 55,
                     id="body-after-trailer"),
        pytest.param([*ORDER, (453, "2"), (448, "P1"), (447, "D"), (452, "1")], codec.INCORRECT_NUMINGROUP, 453,
                     id="group-count"),
        pytest.param([*ORDER, (453, "1"), (447, "D"), (448, "P1")], codec.GROUP_FIELDS_OUT_OF_ORDER, 447,
                     id="group-delimiter"),
        pytest.param([*ORDER, (453, "x")], codec.INCORRECT_DATA_FORMAT, 453, id="group-count-format"),
        pytest.param([*ORDER, (226, "1.5")], codec.INCORRECT_DATA_FORMAT, 226, id="int"),
        pytest.param([*ORDER, (64, "20260230x")], codec.INCORRECT_DATA_FORMAT, 64, id="local-mkt-date"),
        pytest.param([*ORDER, (200, "202613")], codec.INCORRECT_DATA_FORMAT, 200, id="month-year"),
    ],
)
def test_a_field_rule_broken_is_a_session_reject_with_its_reason_and_tag(
    fields: list[tuple[int, str]], reason: int, ref_tag: int
) -> None:
    # GIVEN a well-formed NewOrderSingle breaking one field rule; WHEN decoded
    got = rejected(frame("D", *fields))
    # THEN Reject with the standard SessionRejectReason, RefTagID and text
    assert got == (reason, ref_tag, codec.REJECT_TEXT[reason])


def test_a_boolean_other_than_y_or_n_is_an_incorrect_data_format() -> None:
    assert rejected(frame("D", *ORDER, header=(*HEADER, (43, "X"))))[:2] == (codec.INCORRECT_DATA_FORMAT, 43)


def test_a_required_header_field_missing_is_rejected_on_that_tag() -> None:
    assert rejected(frame("D", *ORDER, header=HEADER[:3]))[:2] == (codec.REQUIRED_TAG_MISSING, 52)


def test_a_group_with_the_right_count_is_valid_and_readable() -> None:
    msg = decode(frame("D", *ORDER, (453, "2"), (448, "P1"), (447, "D"), (452, "1"), (448, "P2"), (452, "3")))
    assert msg.groups(453) == [[(448, "P1"), (447, "D"), (452, "1")], [(448, "P2"), (452, "3")]]


def test_switches_let_empty_values_and_user_defined_tags_through() -> None:
    lenient = ValidationOptions(fields_have_values=False, user_defined_fields=False)
    assert decode(frame("D", *ORDER[:-1], (59, ""), (5001, "x")), lenient).get(5001) == "x"
    # an undefined tag below 5000 is still refused
    assert rejected(frame("D", *ORDER, (4999, "x")), lenient)[0] == codec.INVALID_TAG_NUMBER


def test_an_unknown_msg_type_is_invalid_and_a_fix_type_we_do_not_take_is_unsupported() -> None:
    assert rejected(frame("ZZ"))[:2] == (codec.INVALID_MSGTYPE, 35)
    with pytest.raises(UnsupportedMessageType):
        decode(frame("AE", (571, "R1")))


def test_a_data_field_may_hold_the_delimiter() -> None:
    # GIVEN a Logon whose RawData (96) holds SOH, sized by RawDataLength (95)
    raw = frame("A", (98, "0"), (108, "30"), (95, "5"), (96, "ab\x01cd"))
    # THEN it parses with the data whole
    assert decode(raw).get(96) == "ab\x01cd"


def test_the_splitter_cuts_a_byte_stream_fed_one_byte_at_a_time() -> None:
    frames = [frame("0"), frame("D", *ORDER), frame("1", (112, "T"))]
    splitter = FrameSplitter()
    out = [f for byte in b"".join(frames) for f in splitter.feed(bytes([byte]))]
    assert out == frames


def test_the_splitter_skips_garbage_and_a_truncated_frame_and_keeps_the_next() -> None:
    good = frame("D", *ORDER)
    splitter = FrameSplitter()
    out = list(splitter.feed(b"\x00\xffnoise" + good[:40] + good + b"junk" + good))
    assert out == [good, good]
    assert splitter.garbled >= 2


def test_the_splitter_drops_a_frame_over_the_size_bound_without_buffering_it() -> None:
    splitter = FrameSplitter(max_message_size=256)
    big = frame("D", *ORDER, (58, "x" * 500))
    good = frame("0")
    assert list(splitter.feed(big + good)) == [good]
    assert list(splitter.feed(b"8=FIX.4.4\x019=99999999\x01")) == []
    assert splitter.pending <= 256


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_never_anything_but_a_codec_outcome(data: bytes) -> None:
    splitter = FrameSplitter(max_message_size=512)
    for raw in [*splitter.feed(data), data, frame("0") + data]:
        try:
            validate(parse(raw))
        except codec.FixError:
            pass
    assert splitter.pending <= 512 + len(data)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([frame("0"), frame("D", *ORDER), b"\x01garbage=1\x01", b"8=FIX"]), max_size=8),
       st.integers(min_value=1, max_value=64))
def test_good_frames_survive_any_interleaving_with_junk_and_any_chunking(parts: list[bytes], chunk: int) -> None:
    stream = b"".join(parts)
    splitter = FrameSplitter()
    out = [f for i in range(0, len(stream), chunk) for f in splitter.feed(stream[i : i + chunk])]
    for raw in out:
        decode(raw)
    good = [p for p in parts if p.startswith(b"8=FIX.4.4")]
    assert len(out) <= len(good)
    if all(p.startswith(b"8=FIX.4.4") for p in parts):
        assert out == parts


def test_a_shape_seen_valid_before_still_has_its_values_checked() -> None:
    # GIVEN an order of this exact tag sequence validated once (its checks are then cached)
    decode(frame("D", *ORDER))
    # WHEN the same sequence comes with a bad enum, a bad quantity, a bad timestamp
    bad_side = [*ORDER[:3], (54, "Z"), *ORDER[4:]]
    bad_qty = [*ORDER[:5], (38, "1O0"), *ORDER[6:]]
    bad_time = [*ORDER[:4], (60, "yesterday"), *ORDER[5:]]
    # THEN each is still refused with its reason
    assert rejected(frame("D", *bad_side))[:2] == (codec.VALUE_OUT_OF_RANGE, 54)
    assert rejected(frame("D", *bad_qty))[:2] == (codec.INCORRECT_DATA_FORMAT, 38)
    assert rejected(frame("D", *bad_time))[:2] == (codec.INCORRECT_DATA_FORMAT, 60)
    # and a message changed after parsing is validated afresh
    msg = parse(frame("D", *ORDER))
    msg.remove(11)
    with pytest.raises(SessionReject) as exc:
        validate(msg)
    assert (exc.value.reason, exc.value.ref_tag) == (codec.REQUIRED_TAG_MISSING, 11)


def test_the_dictionary_module_is_what_the_generator_makes_of_quickfix_fix44_xml() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    generated = subprocess.run(
        [sys.executable, str(root / "containers/fix/tools/gen_fix44.py"), str(FIX44_XML)],
        check=True, capture_output=True, text=True,
    ).stdout
    assert generated == (root / "containers/fix/nexus_fix/fix44.py").read_text()
