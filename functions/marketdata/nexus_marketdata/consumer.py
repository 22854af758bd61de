"""execution-events -> trade tape, L2 book levels, L3 resting orders and OHLCV candles.

One Kinesis record is one engine step of one symbol. Per record: each trade is put on the tape
(conditional on its seq), the book deltas are coalesced to the last one per level (one
conditional update each), the candles the trades touch are read once, folded and written back
(one conditional put per candle), and the orders the events name are folded into the L3 book
(one conditional put per order). Every item carries its seq/epoch watermark, so a redelivered
record changes nothing. Stops at the first failed record (``OrderedStreamProcessor``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from nexus_common.batch import OrderedStreamProcessor, PoisonRecord
from nexus_common.events import ENGINE_EVENT_ADAPTER, AnyEngineEvent, BookEvent, TradeEvent
from nexus_common.jsonutil import loads
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings
from pydantic import ValidationError

from nexus_marketdata.repo import DynamoBookLevels, DynamoBookOrders, DynamoCandles, DynamoTrades
from nexus_marketdata.settings import MarketDataConsumerSettings

logger = get_logger()
settings = lazy_settings(MarketDataConsumerSettings)
processor = OrderedStreamProcessor(logger=logger)
trades = lazy(lambda: DynamoTrades(settings().trades_table))
book_levels = lazy(lambda: DynamoBookLevels(settings().book_levels_table))
candles = lazy(lambda: DynamoCandles(settings().candles_table))
book_orders = lazy(lambda: DynamoBookOrders(settings().book_orders_table))

ENGINE_EVENT_TYPES = frozenset(
    {"accepted", "rejected", "trade", "cancelled", "cancel_rejected", "book", "expired", "replaced",
     "replace_rejected", "triggered"}
)


def decode_engine_events(record: KinesisStreamRecord) -> list[AnyEngineEvent]:
    """Every event of the record (all the engine's types: L3 needs replaced, expired,
    triggered); unknown types are skipped, an invalid known one makes the record poison."""
    try:
        payload = loads(record.kinesis.data_as_bytes())
    except ValueError as exc:
        raise PoisonRecord(f"record is not JSON: {exc}") from None
    raw_events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(raw_events, list):
        raise PoisonRecord('record is not {"events": [...]}')
    events: list[AnyEngineEvent] = []
    for raw in raw_events:
        if not isinstance(raw, dict):
            raise PoisonRecord("event is not an object")
        if raw.get("type") not in ENGINE_EVENT_TYPES:
            continue
        try:
            events.append(ENGINE_EVENT_ADAPTER.validate_python(raw))
        except ValidationError as exc:
            raise PoisonRecord(f"invalid {raw.get('type')} event: {exc.error_count()} error(s)") from exc
    return events


def apply_events(events: list[AnyEngineEvent]) -> int:
    """Apply one record's events to every view; returns how many items changed."""
    changed = 0
    tape = [e for e in events if isinstance(e, TradeEvent)]
    for trade in tape:
        changed += trades().put(trade)
    latest: dict[tuple[str, str, str], BookEvent] = {}
    for event in events:
        if isinstance(event, BookEvent):
            latest[(event.symbol, event.side, str(event.price))] = event  # later seq wins
    for delta in latest.values():
        changed += book_levels().apply(delta)
    changed += candles().apply(tape)
    by_symbol: dict[str, list[AnyEngineEvent]] = {}
    for event in events:
        by_symbol.setdefault(event.symbol, []).append(event)
    for symbol, symbol_events in by_symbol.items():
        changed += book_orders().apply(symbol, symbol_events)
    return changed


def record_handler(record: KinesisStreamRecord) -> int:
    return apply_events(decode_engine_events(record))


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
