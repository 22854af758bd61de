"""FIX 4.4 tag=value codec: parse, validate, encode, and a streaming frame splitter.

Outcomes follow the FIX session rules (and QuickFIX, the reference engine):

* ``Garbled``: the frame is not a FIX message we can trust (first three fields not
  8/9/35, BodyLength or CheckSum wrong, a field without ``=``, a non-numeric tag). The session
  drops it silently and does not change its sequence numbers.
* ``IncorrectBeginString``: a well-formed frame of another FIX version: Logout, disconnect.
* ``SessionReject``: a well-formed frame breaking a field rule: Reject (3) with
  SessionRejectReason (373), RefTagID (371) and the standard text.
* ``UnsupportedMessageType``: a valid FIX 4.4 application MsgType the gateway does not take:
  BusinessMessageReject (j) with BusinessRejectReason 3.

Speed: the data dictionary (``fix44``, generated from QuickFIX's FIX44.xml) is compiled once at
import into per-message dicts of ``tag -> (required, group, check)``; parsing is one decode and
one split of the frame; validation is one pass over the fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import Any, Final
from zlib import adler32

from nexus_fix import fix44

SOH: Final = "\x01"
BEGIN_STRING: Final = "FIX.4.4"
DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * 1024

# SessionRejectReason (373) and the standard texts
INVALID_TAG_NUMBER: Final = 0
REQUIRED_TAG_MISSING: Final = 1
TAG_NOT_DEFINED_FOR_MESSAGE: Final = 2
UNDEFINED_TAG: Final = 3
TAG_WITHOUT_VALUE: Final = 4
VALUE_OUT_OF_RANGE: Final = 5
INCORRECT_DATA_FORMAT: Final = 6
COMPID_PROBLEM: Final = 9
SENDING_TIME_ACCURACY: Final = 10
INVALID_MSGTYPE: Final = 11
TAG_APPEARS_MORE_THAN_ONCE: Final = 13
TAG_OUT_OF_ORDER: Final = 14
GROUP_FIELDS_OUT_OF_ORDER: Final = 15
INCORRECT_NUMINGROUP: Final = 16
OTHER: Final = 99

REJECT_TEXT: Final[dict[int, str]] = {
    0: "Invalid tag number",
    1: "Required tag missing",
    2: "Tag not defined for this message type",
    3: "Undefined Tag",
    4: "Tag specified without a value",
    5: "Value is incorrect (out of range) for this tag",
    6: "Incorrect data format for value",
    7: "Decryption problem",
    8: "Signature problem",
    9: "CompID problem",
    10: "SendingTime accuracy problem",
    11: "Invalid MsgType",
    12: "XML Validation error",
    13: "Tag appears more than once",
    14: "Tag specified out of required order",
    15: "Repeating group fields out of order",
    16: "Incorrect NumInGroup count for repeating group",
    17: "Non Data value includes field delimiter",
    99: "Other",
}


class FixError(Exception):
    """Base of the codec's outcomes."""


class Garbled(FixError):
    """Not a trustworthy FIX frame: drop it, no sequence number change."""


class IncorrectBeginString(FixError):
    """A well-formed frame whose BeginString is not FIX.4.4."""


class SessionReject(FixError):
    """A field rule broken: answered by Reject (3)."""

    def __init__(self, reason: int, ref_tag: int | None = None, text: str | None = None) -> None:
        self.reason = reason
        self.ref_tag = ref_tag
        self.text = text or REJECT_TEXT.get(reason, "Other")
        super().__init__(f"{self.text} (373={reason}, 371={ref_tag})")


class UnsupportedMessageType(FixError):
    """A FIX 4.4 application message type the gateway does not take: BusinessMessageReject."""

    def __init__(self, msg_type: str) -> None:
        self.msg_type = msg_type
        super().__init__(f"Unsupported Message Type {msg_type}")


# -- values ------------------------------------------------------------------------------------


def fix_value(value: object) -> str:
    """A Python value in FIX wire form: Decimal in plain notation (never exponent), bool Y/N,
    aware datetime as UTCTimestamp with milliseconds."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("a FIX decimal is finite")
        text = format(value, "f")
        return text
    if isinstance(value, datetime):
        return utc_timestamp(value)
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"no FIX form for {type(value).__name__}")


def utc_timestamp(instant: datetime) -> str:
    if instant.tzinfo is None:
        raise ValueError("UTCTimestamp needs an aware datetime")
    t = instant.astimezone(UTC)
    return (
        f"{t.year:04d}{t.month:02d}{t.day:02d}-{t.hour:02d}:{t.minute:02d}:{t.second:02d}."
        f"{t.microsecond // 1000:03d}"
    )


def parse_utc_timestamp(text: str) -> datetime:
    """UTCTimestamp (seconds, milliseconds or microseconds) to an aware datetime; ValueError if bad."""
    if not _UTCTIMESTAMP(text):
        raise ValueError(f"not a UTCTimestamp: {text!r}")
    second = int(text[15:17])
    micro = int(text[18:].ljust(6, "0")) if len(text) > 17 else 0
    leap = second == 60  # a leap second reads as the last instant of its minute
    instant = datetime(
        int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]), int(text[12:14]),
        59 if leap else second, 999_999 if leap else micro, tzinfo=UTC,
    )  # ValueError for a day the month does not have
    return instant


def parse_decimal(text: str) -> Decimal:
    """A FIX float/price/qty as Decimal (the data-format rule checked first)."""
    if not _FLOAT(text):
        raise ValueError(f"not a FIX decimal: {text!r}")
    return Decimal(text)


# -- the message -------------------------------------------------------------------------------


class Message:
    """A FIX message: its fields in wire order, ``(tag, value)`` with string values.

    Build one with ``Message.new("8", (37, "O-1"), (17, "E-1"), ...)``; the session fills the
    header (8, 9, 49, 56, 34, 52) and the trailer when it sends it."""

    __slots__ = ("_shape", "fields")

    def __init__(self, fields: list[tuple[int, str]] | None = None) -> None:
        self.fields: list[tuple[int, str]] = fields if fields is not None else []
        # the tag sequence as parsed (no empty value), for validate's cache; None once changed
        self._shape: tuple[int, ...] | None = None

    @classmethod
    def new(cls, msg_type: str, *fields: tuple[int, object]) -> Message:
        msg = cls([(35, msg_type)])
        for tag, value in fields:
            msg.fields.append((tag, fix_value(value)))
        return msg

    @property
    def msg_type(self) -> str:
        value = self.get(35)
        return value if value is not None else ""

    def get(self, tag: int) -> str | None:
        """The first value of ``tag``, or None."""
        for t, v in self.fields:
            if t == tag:
                return v
        return None

    def get_all(self, tag: int) -> list[str]:
        return [v for t, v in self.fields if t == tag]

    def __contains__(self, tag: object) -> bool:
        return any(t == tag for t, _ in self.fields)

    def set(self, tag: int, value: object) -> None:
        """Replace the first ``tag`` or append it."""
        self._shape = None
        text = fix_value(value)
        for i, (t, _) in enumerate(self.fields):
            if t == tag:
                self.fields[i] = (tag, text)
                return
        self.fields.append((tag, text))

    def append(self, tag: int, value: object) -> None:
        self._shape = None
        self.fields.append((tag, fix_value(value)))

    def remove(self, tag: int) -> None:
        self._shape = None
        self.fields = [(t, v) for t, v in self.fields if t != tag]

    def groups(self, count_tag: int) -> list[list[tuple[int, str]]]:
        """The entries of the repeating group counted by ``count_tag`` (per the dictionary of
        this message type), each as its fields in order. Nested groups stay inside their entry."""
        mdef = MESSAGE_DEFS.get(self.msg_type)
        spec = None
        if mdef is not None:
            found = mdef.fields.get(count_tag) or HEADER_DEFS.get(count_tag)
            spec = found[1] if found is not None else None
            if spec is None:
                spec = _find_group(mdef.fields, count_tag)
        if spec is None:
            raise KeyError(f"{count_tag} is not a group of MsgType {self.msg_type}")
        for i, (t, _) in enumerate(self.fields):
            if t == count_tag:
                out: list[list[tuple[int, str]]] = []
                j = i + 1
                while j < len(self.fields) and self.fields[j][0] in spec.fields:
                    if self.fields[j][0] == spec.delim:
                        out.append([])
                    if out:
                        out[-1].append(self.fields[j])
                    j += 1
                return out
        return []

    def __repr__(self) -> str:
        return "Message(" + "|".join(f"{t}={v}" for t, v in self.fields) + ")"

    def encode(self) -> bytes:
        """The wire frame: 8, 9 and 35 first, the other header fields, the body, then 10.
        BodyLength and CheckSum are computed here."""
        msg_type = None
        head: list[str] = []
        body: list[str] = []
        tail: list[str] = []
        for tag, value in self.fields:
            if tag in (8, 9, 10):
                continue
            if tag == 35:
                msg_type = value
            elif tag in HEADER_DEFS:
                head.append(f"{tag}={value}\x01")
            elif tag in TRAILER_DEFS:
                tail.append(f"{tag}={value}\x01")
            else:
                body.append(f"{tag}={value}\x01")
        if msg_type is None:
            raise ValueError("a FIX message needs MsgType (35)")
        payload = (f"35={msg_type}\x01" + "".join(head) + "".join(body) + "".join(tail)).encode("latin-1")
        frame = b"8=FIX.4.4\x019=" + str(len(payload)).encode() + b"\x01" + payload
        return frame + b"10=%03d\x01" % (sum(frame) % 256)


# -- the compiled dictionary -------------------------------------------------------------------

_INT = re.compile(r"-?[0-9]+\Z").match
_UINT = re.compile(r"[0-9]+\Z").match
_FLOAT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z").match
_UTCTIMESTAMP = re.compile(
    r"[0-9]{4}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])-(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)"
    r"(?:\.[0-9]{3}(?:[0-9]{3})?)?\Z"
).match
_UTCTIMEONLY = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]{3})?\Z").match
_DATE = re.compile(r"[0-9]{4}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])\Z").match
_MONTHYEAR = re.compile(r"[0-9]{4}(?:0[1-9]|1[0-2])(?:(?:0[1-9]|[12][0-9]|3[01])|w[1-5])?\Z").match


def _char(value: str) -> bool:
    return len(value) == 1


def _boolean(value: str) -> bool:
    return value == "Y" or value == "N"


# unsigned integers: str.isdecimal, exact for latin-1 text (its only decimal digits are 0-9)
_CHECKS: dict[str, Callable[[str], Any] | None] = {
    "INT": _INT,
    "LENGTH": str.isdecimal,
    "SEQNUM": str.isdecimal,
    "NUMINGROUP": str.isdecimal,
    "DAYOFMONTH": str.isdecimal,
    "TAGNUM": str.isdecimal,
    "FLOAT": _FLOAT,
    "PRICE": _FLOAT,
    "QTY": _FLOAT,
    "AMT": _FLOAT,
    "PRICEOFFSET": _FLOAT,
    "PERCENTAGE": _FLOAT,
    "CHAR": _char,
    "BOOLEAN": _boolean,
    "UTCTIMESTAMP": _UTCTIMESTAMP,
    "UTCTIMEONLY": _UTCTIMEONLY,
    "UTCDATEONLY": _DATE,
    "LOCALMKTDATE": _DATE,
    "MONTHYEAR": _MONTHYEAR,
}

FIELD_TYPES: Final = fix44.FIELD_TYPES
CHECK: Final[dict[int, Callable[[str], Any] | None]] = {t: _CHECKS.get(k) for t, k in FIELD_TYPES.items()}
ENUMS: Final[dict[int, frozenset[str]]] = {t: frozenset(v) for t, v in fix44.ENUMS.items()}
MULTI_VALUE: Final = frozenset(t for t, k in FIELD_TYPES.items() if k == "MULTIPLEVALUESTRING")
# a length field and the DATA field it sizes (the data may hold SOH)
DATA_LENGTH: Final[dict[int, int]] = {95: 96, 90: 91, 212: 213, 354: 355, 93: 89}


@dataclass(frozen=True, slots=True)
class GroupDef:
    delim: int
    fields: dict[int, tuple[bool, GroupDef | None]]
    required: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MessageDef:
    name: str
    category: str  # "admin" | "app"
    fields: dict[int, tuple[bool, GroupDef | None]]
    required: tuple[int, ...]
    # every tag of the header, this body and the trailer: (section 0/1/2, group, check, enum)
    lookup: dict[int, tuple[int, GroupDef | None, Callable[[str], Any] | None, frozenset[str] | None]]
    required_all: frozenset[int]


def _compile(specs: Iterable[Any]) -> tuple[dict[int, tuple[bool, GroupDef | None]], tuple[int, ...]]:
    fields: dict[int, tuple[bool, GroupDef | None]] = {}
    for tag, required, group in specs:
        sub = None
        if group is not None:
            gfields, greq = _compile(group)
            sub = GroupDef(group[0][0], gfields, greq)
        fields.setdefault(tag, (required, sub))
    return fields, tuple(t for t, (r, _) in fields.items() if r)


def _find_group(fields: dict[int, tuple[bool, GroupDef | None]], tag: int) -> GroupDef | None:
    for _, group in fields.values():
        if group is not None:
            if tag in group.fields and group.fields[tag][1] is not None:
                return group.fields[tag][1]
            found = _find_group(group.fields, tag)
            if found is not None:
                return found
    return None


HEADER_DEFS, HEADER_REQUIRED = _compile(fix44.HEADER)
TRAILER_DEFS, _ = _compile(fix44.TRAILER)
HEADER_REQUIRED = tuple(t for t in HEADER_REQUIRED if t not in (8, 9, 35))


def _message_def(name: str, category: str, specs: Any) -> MessageDef:
    fields, required = _compile(specs)
    lookup = {}
    for section, defs in ((0, HEADER_DEFS), (1, fields), (2, TRAILER_DEFS)):
        for tag, (_, group) in defs.items():
            if tag not in (8, 9, 35, 10):
                lookup[tag] = (section, group, CHECK.get(tag), ENUMS.get(tag))
    return MessageDef(name, category, fields, required, lookup, frozenset(HEADER_REQUIRED + required))


MESSAGE_DEFS: Final[dict[str, MessageDef]] = {
    mt: _message_def(name, cat, specs) for mt, (name, cat, specs) in fix44.MESSAGES.items()
}
ADMIN_TYPES: Final = frozenset(mt for mt, cat in fix44.ALL_MSG_TYPES.items() if cat == "admin")


@dataclass(frozen=True, slots=True)
class ValidationOptions:
    """The validation switches, QuickFIX's names: ValidateFieldsHaveValues,
    ValidateUserDefinedFields (tags 5000 and up not in the dictionary)."""

    fields_have_values: bool = True
    user_defined_fields: bool = True


DEFAULT_OPTIONS: Final = ValidationOptions()


# -- parse -------------------------------------------------------------------------------------


def parse(frame: bytes) -> Message:
    """One complete frame to a Message, checking the envelope: 8, 9, 35 first in that order,
    BodyLength, CheckSum (last, three digits). ``Garbled`` if any is wrong;
    ``IncorrectBeginString`` for another well-formed version."""
    n = len(frame)
    if n < 20 or frame[-1] != 1 or frame[:2] != b"8=":
        raise Garbled("not a FIX frame")
    if frame[n - 8 : n - 4] != b"\x0110=":
        raise Garbled("CheckSum (10) is not the last field")
    checksum_text = frame[n - 4 : n - 1]
    total = (adler32(frame[: n - 7]) & 0xFFFF) - 1 if n <= 264 else _byte_sum(frame, n - 7)
    if not checksum_text.isdigit() or int(checksum_text) != total & 255:
        raise Garbled("CheckSum does not match")
    text = frame.decode("latin-1")
    skeleton = frame.translate(None, _NOT_SEPARATORS)
    if skeleton == _SKELETON[: len(skeleton)] and len(skeleton) >= 8:
        # every field holds exactly one '=': one split gives tag, value, tag, value, ...
        tokens = text[: n - 1].replace(SOH, "=").split("=")
        tags = tokens[0::2]
        values = tokens[1::2]
        if tags[0] != "8" or tags[1] != "9" or tags[2] != "35":
            raise Garbled("the first three fields are not BeginString, BodyLength, MsgType")
        length_text = values[1]
        if not length_text.isdecimal() or len(length_text) > 9:
            raise Garbled("BodyLength is not a number")
        if int(length_text) != n - 13 - len(values[0]) - len(length_text):
            raise Garbled("BodyLength does not match")
        layout = tuple(tags)
        shape = _LAYOUTS.get(layout)
        if shape is None:
            try:
                ints = tuple(map(_TAG_INT.__getitem__, tags))
            except KeyError:
                ints = None
            if ints is not None and _DATA_LENGTH_TAGS.isdisjoint(ints):
                shape = ints
                if len(_LAYOUTS) < _MAX_LAYOUTS:
                    _LAYOUTS[layout] = shape
        if shape is not None:
            if values[0] != BEGIN_STRING:
                raise IncorrectBeginString(values[0])
            msg = Message(list(zip(shape, values)))  # noqa: B905 - equal lengths: the skeleton says so
            if "=\x01" not in text:
                msg._shape = shape
            return msg
    parts = text[: n - 1].split(SOH)
    if len(parts) < 4 or parts[1][:2] != "9=" or parts[2][:3] != "35=" or parts[0][:2] != "8=":
        raise Garbled("the first three fields are not BeginString, BodyLength, MsgType")
    length_text = parts[1][2:]
    if not length_text.isdecimal() or len(length_text) > 9:
        raise Garbled("BodyLength is not a number")
    if int(length_text) != n - 9 - len(parts[0]) - len(parts[1]):
        raise Garbled("BodyLength does not match")
    return _parse_slow(parts, parts[0])


def _byte_sum(data: bytes, end: int) -> int:
    """The sum of ``data[:end]``'s bytes, by zlib's Adler-32: its low half is 1 + the byte sum
    modulo 65521, exact for up to 257 bytes (257 x 255 < 65521), so longer data goes in chunks."""
    if end <= 257:
        return (adler32(data[:end]) & 0xFFFF) - 1
    view = memoryview(data)
    return sum((adler32(view[i : min(i + 257, end)]) & 0xFFFF) - 1 for i in range(0, end, 257))


_NOT_SEPARATORS: Final = bytes(b for b in range(256) if b not in (0x01, 0x3D))
_SKELETON: Final = b"=\x01" * 4096


_TAG_INT: Final = {str(i): i for i in range(1, 10000)}
# tag layouts (the tags as written, in order) seen with no DATA field: their tags as ints. Bounded:
# a client inventing layouts without end only stops adding to it.
_LAYOUTS: dict[tuple[str, ...], tuple[int, ...]] = {}
_MAX_LAYOUTS: Final = 4096
_DATA_LENGTH_TAGS: Final = frozenset((95, 90, 212, 354, 93))


def _parse_slow(parts: list[str], p0: str) -> Message:
    """Field by field: values holding ``=``, DATA fields holding SOH, tags of 5 digits."""
    fields: list[tuple[int, str]] = []
    append = fields.append
    data_next: dict[int, int] | None = None
    count = len(parts)
    i = 0
    while i < count:
        part = parts[i]
        tag_text, sep, value = part.partition("=")
        if not sep or not tag_text.isdecimal() or len(tag_text) > 9:
            raise Garbled(f"field {i + 1} is not tag=value")
        tag = int(tag_text)
        if data_next is not None and tag in data_next.values():
            # a DATA field: its length field said how many bytes, SOH included
            want = _wanted(data_next, tag)
            while len(value) < want and i + 1 < count:
                i += 1
                value += SOH + parts[i]
            data_next = None
        elif tag in DATA_LENGTH and value.isdecimal() and len(value) < 7:
            data_next = {int(value): DATA_LENGTH[tag]}
        append((tag, value))
        i += 1
    if p0 != "8=FIX.4.4":
        raise IncorrectBeginString(p0[2:])
    return Message(fields)


def _wanted(data_next: dict[int, int], tag: int) -> int:
    for length, data_tag in data_next.items():
        if data_tag == tag:
            return length
    return 0


# -- validate ----------------------------------------------------------------------------------


def validate(msg: Message, options: ValidationOptions = DEFAULT_OPTIONS) -> MessageDef:
    """Check a parsed message against the FIX 4.4 dictionary; raise ``SessionReject`` (or
    ``UnsupportedMessageType``) for the first rule broken; return its definition.

    One pass over the fields: section order, defined tags, values (an enum hit needs no format
    check); repeated and required tags by set operations after it. A message with a repeating
    group is walked again field by field (``_validate_exact``)."""
    fields = msg.fields
    msg_type = fields[2][1]
    mdef = MESSAGE_DEFS.get(msg_type)
    if mdef is None:
        if msg_type in fix44.ALL_MSG_TYPES and msg_type not in ADMIN_TYPES:
            raise UnsupportedMessageType(msg_type)
        raise SessionReject(INVALID_MSGTYPE, 35)
    shape = msg._shape
    if shape is not None and len(shape) == len(fields):
        plan = _PLANS.get((msg_type, shape, options.fields_have_values, options.user_defined_fields))
        if plan is not None:
            # this tag sequence passed every structural rule before: check the values only
            for i, tag, check, allowed in plan:
                value = fields[i][1]
                if allowed is not None:
                    if value not in allowed:
                        _check_value(tag, value)
                elif not check(value):  # type: ignore[misc]
                    raise SessionReject(INCORRECT_DATA_FORMAT, tag)
            return mdef
    lookup = mdef.lookup
    have_values = options.fields_have_values
    section = 0  # 0 header, 1 body, 2 trailer
    for tag, value in islice(fields, 3, len(fields) - 1):
        entry = lookup.get(tag)
        if entry is None:
            if tag in FIELD_TYPES:
                raise SessionReject(TAG_NOT_DEFINED_FOR_MESSAGE, tag)
            if tag >= 5000 and not options.user_defined_fields:
                continue
            raise SessionReject(INVALID_TAG_NUMBER, tag)
        sec, group, check, allowed = entry
        if sec != section:
            if sec < section:
                raise SessionReject(TAG_OUT_OF_ORDER, tag)
            section = sec
        if not value:
            if have_values:
                raise SessionReject(TAG_WITHOUT_VALUE, tag)
            continue
        if allowed is not None:
            if value not in allowed:
                _check_value(tag, value)
        elif check is not None and not check(value):
            raise SessionReject(INCORRECT_DATA_FORMAT, tag)
        if group is not None:
            return _validate_exact(fields, mdef, options)
    tags = [t for t, _ in fields]
    seen = set(tags)
    if len(seen) != len(tags):
        once: set[int] = set()
        for tag in tags:
            if tag in once:
                raise SessionReject(TAG_APPEARS_MORE_THAN_ONCE, tag)
            once.add(tag)
    if not mdef.required_all <= seen:
        for tag in HEADER_REQUIRED + mdef.required:
            if tag not in seen:
                raise SessionReject(REQUIRED_TAG_MISSING, tag)
    if shape is not None and len(shape) == len(fields) and len(_PLANS) < _MAX_PLANS:
        _PLANS[(msg_type, shape, options.fields_have_values, options.user_defined_fields)] = tuple(
            (i, tag, entry[2], entry[3])
            for i, tag in enumerate(shape)
            if 3 <= i < len(shape) - 1
            and (entry := lookup.get(tag)) is not None
            and (entry[2] is not None or entry[3] is not None)
        )
    return mdef


# tag sequences seen valid, per MsgType and options: the value checks each needs, by position.
# Clients send few shapes; the bound keeps a client sending endless new ones from growing it.
_PLANS: dict[
    tuple[str, tuple[int, ...], bool, bool],
    tuple[tuple[int, int, Callable[[str], Any] | None, frozenset[str] | None], ...],
] = {}
_MAX_PLANS: Final = 4096


def _validate_exact(fields: list[tuple[int, str]], mdef: MessageDef, options: ValidationOptions) -> MessageDef:
    """Field by field with the repeating groups walked entry by entry."""
    lookup = mdef.lookup
    have_values = options.fields_have_values
    seen: set[int] = set()
    add = seen.add
    section = 0  # 0 header, 1 body, 2 trailer
    end = len(fields) - 1
    skip = 3
    for i in range(3, end):
        if i < skip:
            continue
        tag, value = fields[i]
        entry = lookup.get(tag)
        if entry is None:
            if tag in FIELD_TYPES:
                raise SessionReject(TAG_NOT_DEFINED_FOR_MESSAGE, tag)
            if tag >= 5000 and not options.user_defined_fields:
                continue
            raise SessionReject(INVALID_TAG_NUMBER, tag)
        sec, group, _, _ = entry
        if sec != section:
            if sec < section:
                raise SessionReject(TAG_OUT_OF_ORDER, tag)
            section = sec
        if tag in seen:
            raise SessionReject(TAG_APPEARS_MORE_THAN_ONCE, tag)
        add(tag)
        if value:
            _check_value(tag, value)
            if group is not None:
                skip = _walk_group(fields, i + 1, end, tag, int(value), group, have_values)
        elif have_values:
            raise SessionReject(TAG_WITHOUT_VALUE, tag)
    if not mdef.required_all <= seen:
        for tag in HEADER_REQUIRED + mdef.required:
            if tag not in seen:
                raise SessionReject(REQUIRED_TAG_MISSING, tag)
    return mdef


def _check_value(tag: int, value: str) -> None:
    check = CHECK.get(tag)
    if check is not None and not check(value):
        raise SessionReject(INCORRECT_DATA_FORMAT, tag)
    allowed = ENUMS.get(tag)
    if allowed is not None:
        if tag in MULTI_VALUE:
            if not all(v in allowed for v in value.split(" ")):
                raise SessionReject(VALUE_OUT_OF_RANGE, tag)
        elif value not in allowed:
            raise SessionReject(VALUE_OUT_OF_RANGE, tag)


def _walk_group(
    fields: list[tuple[int, str]], i: int, end: int, count_tag: int, declared: int, group: GroupDef, have_values: bool
) -> int:
    """Walk the entries of one repeating group from index ``i``; return the index after it."""
    if declared > end - i:
        raise SessionReject(INCORRECT_NUMINGROUP, count_tag)
    members = group.fields
    entries = 0
    seen: set[int] = set()
    while i < end:
        tag, value = fields[i]
        if tag == group.delim:
            if entries:
                _entry_required(group, seen)
            entries += 1
            seen = {tag}
        elif tag in members:
            if not entries:
                raise SessionReject(GROUP_FIELDS_OUT_OF_ORDER, tag)
            if tag in seen:
                raise SessionReject(TAG_APPEARS_MORE_THAN_ONCE, tag)
            seen.add(tag)
        else:
            break
        if value:
            _check_value(tag, value)
        elif have_values:
            raise SessionReject(TAG_WITHOUT_VALUE, tag)
        i += 1
        sub = members[tag][1]
        if sub is not None and value:
            i = _walk_group(fields, i, end, tag, int(value), sub, have_values)
    if entries:
        _entry_required(group, seen)
    if entries != declared:
        raise SessionReject(INCORRECT_NUMINGROUP, count_tag)
    return i


def _entry_required(group: GroupDef, seen: set[int]) -> None:
    for tag in group.required:
        if tag not in seen:
            raise SessionReject(REQUIRED_TAG_MISSING, tag)


def decode(frame: bytes, options: ValidationOptions = DEFAULT_OPTIONS) -> Message:
    """``parse`` then ``validate``."""
    msg = parse(frame)
    validate(msg, options)
    return msg


# -- the TCP frame splitter ---------------------------------------------------------------------


class FrameSplitter:
    """Cuts a TCP byte stream into candidate FIX frames, bounded by ``max_message_size``.

    ``feed(data)`` yields each complete frame (its BodyLength says where it ends); bytes before a
    ``8=FIX`` start, a frame whose BodyLength is not a number or exceeds the bound, and a frame
    not ending in ``10=nnn<SOH>`` where BodyLength says, are skipped to the next ``8=FIX``
    (``garbled`` counts them). The buffer never holds more than ``max_message_size`` plus one read.
    """

    __slots__ = ("_buf", "garbled", "max_message_size")

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self.max_message_size = max_message_size
        self.garbled = 0

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> Iterator[bytes]:
        buf = self._buf
        buf += data
        while buf:
            start = buf.find(b"8=FIX")
            if start < 0:
                # keep a possible partial "8=FIX" at the end, drop the rest
                keep = 0
                for k in range(min(4, len(buf)), 0, -1):
                    if buf[-k:] == b"8=FIX"[:k]:
                        keep = k
                        break
                if len(buf) > keep:
                    self.garbled += 1
                del buf[: len(buf) - keep]
                return
            if start:
                self.garbled += 1
                del buf[:start]
            soh = buf.find(b"\x01", 0, 32)
            inner = buf.rfind(b"8=FIX", 1, soh if soh > 0 else min(len(buf), 32))
            if inner > 0:  # a start cut short by another start: keep the last
                self.garbled += 1
                del buf[:inner]
                continue
            if soh < 0:
                if len(buf) >= 32:
                    self._skip()
                    continue
                return
            if buf[soh + 1 : soh + 3] != b"9=":
                if len(buf) < soh + 3:
                    return
                self._skip()
                continue
            end9 = buf.find(b"\x01", soh + 3, soh + 16)
            if end9 < 0:
                if len(buf) >= soh + 16:
                    self._skip()
                    continue
                return
            digits = bytes(buf[soh + 3 : end9])
            if not digits.isdigit():
                self._skip()
                continue
            total = end9 + 1 + int(digits) + 7
            if total > self.max_message_size:
                self._skip()
                continue
            if len(buf) < total:
                return
            if buf[total - 7 : total - 4] != b"10=" or buf[total - 1] != 1:
                self._skip()
                continue
            frame = bytes(buf[:total])
            del buf[:total]
            yield frame

    def _skip(self) -> None:
        """Drop the frame at the head of the buffer up to the next start."""
        self.garbled += 1
        nxt = self._buf.find(b"8=FIX", 1)
        del self._buf[: nxt if nxt > 0 else len(self._buf)]


def now_utc() -> datetime:
    return datetime.now(UTC)
