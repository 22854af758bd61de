"""The mapping tables FIX 4.4 <-> NexusTrade, in one place (the README shows the same tables).

Pure data and small functions: no I/O. Decimals cross FIX as the orders API writes them
(``money.fmt``: plain notation, no exponent), timestamps as UTCTimestamp with milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from nexus_common.money import fmt

# -- tags used by the application layer ------------------------------------------------------
ACCOUNT: Final = 1
AVG_PX: Final = 6
CL_ORD_ID: Final = 11
CUM_QTY: Final = 14
EXEC_ID: Final = 17
EXEC_INST: Final = 18
LAST_PX: Final = 31
LAST_QTY: Final = 32
MSG_SEQ_NUM: Final = 34
MSG_TYPE: Final = 35
ORDER_ID: Final = 37
ORDER_QTY: Final = 38
ORD_STATUS: Final = 39
ORD_TYPE: Final = 40
ORIG_CL_ORD_ID: Final = 41
POSS_RESEND: Final = 97
PRICE: Final = 44
REF_SEQ_NUM: Final = 45
SIDE: Final = 54
SYMBOL: Final = 55
TEXT: Final = 58
TIME_IN_FORCE: Final = 59
TRANSACT_TIME: Final = 60
STOP_PX: Final = 99
CXL_REJ_REASON: Final = 102
ORD_REJ_REASON: Final = 103
MAX_FLOOR: Final = 111
EXPIRE_TIME: Final = 126
EXEC_TYPE: Final = 150
LEAVES_QTY: Final = 151
EXEC_RESTATEMENT_REASON: Final = 378
REF_MSG_TYPE: Final = 372
BUSINESS_REJECT_REASON: Final = 380
CXL_REJ_RESPONSE_TO: Final = 434
MASS_CANCEL_REQUEST_TYPE: Final = 530
MASS_CANCEL_RESPONSE: Final = 531
MASS_CANCEL_REJECT_REASON: Final = 532
TOTAL_AFFECTED_ORDERS: Final = 533
ORD_STATUS_REQ_ID: Final = 790

# -- order entry: FIX -> NexusTrade ----------------------------------------------------------
ORD_TYPES: Final = {"1": "market", "2": "limit", "3": "stop", "4": "stop_limit"}
TIMES_IN_FORCE: Final = {"0": "day", "1": "gtc", "3": "ioc", "4": "fok", "6": "gtd"}
SIDES: Final = {"1": "buy", "2": "sell"}
EXEC_INST_POST_ONLY: Final = "6"  # "Participate don't initiate"
# -- and back --------------------------------------------------------------------------------
FIX_ORD_TYPES: Final = {v: k for k, v in ORD_TYPES.items()}
FIX_TIMES_IN_FORCE: Final = {v: k for k, v in TIMES_IN_FORCE.items()}
FIX_SIDES: Final = {v: k for k, v in SIDES.items()}

# ExecType (150) and OrdStatus (39) values.
PENDING_NEW: Final = "A"
NEW: Final = "0"
PARTIALLY_FILLED: Final = "1"
FILLED: Final = "2"
CANCELED: Final = "4"
PENDING_CANCEL: Final = "6"
REJECTED: Final = "8"
EXPIRED: Final = "C"
PENDING_REPLACE: Final = "E"
REPLACED: Final = "5"
TRADE: Final = "F"
RESTATED: Final = "D"
ORDER_STATUS: Final = "I"

# NexusTrade order status -> OrdStatus (39)
ORD_STATUSES: Final = {
    "pending_new": PENDING_NEW,
    "new": NEW,
    "partially_filled": PARTIALLY_FILLED,
    "filled": FILLED,
    "cancelled": CANCELED,
    "expired": EXPIRED,
    "rejected": REJECTED,
}

# OrdRejReason (103): a NexusTrade reason code (orders API error or engine ``rejected`` reason)
# -> the FIX value; anything else is 99 (Other) with the code and message in Text (58).
ORD_REJ_REASONS: Final = {
    "unknown_symbol": "1",
    "symbol_halted": "2",
    "instrument_halted": "2",
    "already_expired": "4",
    "order_not_found": "5",
    "duplicate_order": "6",
    "client_order_id_reused": "6",
    "invalid_quantity": "13",
    "quantity_off_lot": "13",
    "unknown_account": "15",
    "account_not_found": "15",
    "account_inactive": "15",
    # pre-trade risk refusals (nexus_common.risk, nexus_orders.risk): "order exceeds limit"
    "insufficient_buying_power": "3",
    "insufficient_position": "3",
    "max_quantity_exceeded": "3",
    "max_order_value_exceeded": "3",
    "position_limit_exceeded": "3",
    "price_outside_collar": "3",
    "max_open_orders_exceeded": "3",
    "trading_disabled": "3",
    "unsupported": "11",
    "post_only_would_take": "11",
}
OTHER: Final = "99"

# CxlRejReason (102): why a cancel or replace was refused.
CXL_REJ_REASONS: Final = {
    "order_not_open": "0",  # too late to cancel
    "not_replaceable": "99",
    "order_not_found": "1",
    "unknown_order": "1",
    "not_owner": "1",
    "unknown_account": "1",
    "replace_pending": "3",  # already pending cancel or replace
    "cancel_pending": "3",
    "duplicate_order": "6",  # duplicate ClOrdID
}
CXL_REJ_RESPONSE_CANCEL: Final = "1"
CXL_REJ_RESPONSE_REPLACE: Final = "2"

# MassCancelRequestType (530) values the gateway serves: 1 a security, 7 all orders.
MASS_CANCEL_BY_SYMBOL: Final = "1"
MASS_CANCEL_ALL: Final = "7"

# BusinessRejectReason (380)
BUSINESS_REJECT_OTHER: Final = "0"
BUSINESS_REJECT_UNKNOWN_ID: Final = "1"
BUSINESS_REJECT_UNSUPPORTED: Final = "3"
BUSINESS_REJECT_NOT_AUTHORIZED: Final = "6"


def ord_rej_reason(code: str) -> str:
    return ORD_REJ_REASONS.get(code, OTHER)


def cxl_rej_reason(code: str) -> str:
    return CXL_REJ_REASONS.get(code, OTHER)


def fix_decimal(value: Decimal | None) -> str:
    """A FIX Qty/Price/Amt: the orders API's canonical decimal (``money.fmt``), 0 when absent."""
    return fmt(value) if value is not None else "0"


def utc_timestamp(ts: datetime) -> str:
    """UTCTimestamp with milliseconds, ``YYYYMMDD-HH:MM:SS.sss``."""
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y%m%d-%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


def parse_utc_timestamp(text: str) -> datetime:
    """A FIX UTCTimestamp (seconds, optional milli/micro/nanoseconds), tz-aware UTC."""
    if len(text) > 30:
        raise ValueError("timestamp too long")
    base, _, fraction = text.partition(".")
    ts = datetime.strptime(base, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
    if fraction:
        if not fraction.isdigit() or len(fraction) > 9:
            raise ValueError("bad fraction of a second")
        ts = ts.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return ts
