"""The streaming and alert domains, in memory (no AWS): what the fan-out sends to which channel,
who may read which channel, when an alert fires, what a settlement outcome says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from lambda_events import load_event
from nexus_common.batch import ExecutionEventT
from nexus_common.errors import Forbidden, ValidationFailed
from nexus_common.events import ENGINE_EVENT_ADAPTER, TradeEvent
from nexus_common.push import Connection
from nexus_notifications.alerts import (
    CreateAlert,
    alert_notification,
    new_alert,
    settlement_notification,
)
from nexus_streaming.domain import SubscriptionRequest, channel_id, fan_out

NOW = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)


def step() -> list[ExecutionEventT]:
    return [ENGINE_EVENT_ADAPTER.validate_python(e) for e in load_event("execution_events_fill.json")["events"]]


def test_one_engine_step_fans_out_to_each_channel_in_event_order() -> None:
    # GIVEN one engine step: a resting sell, a buy that trades 40 of it, two book deltas
    result = fan_out(step())
    # THEN the step's watermark is its last engine seq
    assert result is not None and (result.symbol, result.last_seq) == ("AAPL", 5)
    # AND the public channels carry the trade, the two book levels, and the ticker
    (trade,) = result.channels["trades:AAPL"]
    assert (trade["price"], trade["quantity"], trade["aggressor_side"]) == ("101.5", "40", "buy")
    (book,) = result.channels["book:AAPL"]
    assert [(lvl["side"], lvl["quantity"]) for lvl in book["levels"]] == [("sell", "100"), ("sell", "60")]
    (ticker,) = result.channels["ticker:AAPL"]
    assert (ticker["last"], ticker["volume"], ticker["trades"]) == ("101.5", "40", 1)
    # AND each account hears only of its own orders and fills
    assert [m["status"] for m in result.channels["orders:acc_maker"]] == ["new", "partially_filled"]
    assert [m["status"] for m in result.channels["orders:acc_taker"]] == ["new", "filled"]
    (maker_fill,) = result.channels["fills:acc_maker"]
    (taker_fill,) = result.channels["fills:acc_taker"]
    assert (maker_fill["side"], maker_fill["liquidity"], maker_fill["remaining_quantity"]) == ("sell", "maker", "60")
    assert (taker_fill["side"], taker_fill["liquidity"], taker_fill["remaining_quantity"]) == ("buy", "taker", "0")
    # AND no message carries a float
    for messages in result.channels.values():
        for message in messages:
            assert not any(isinstance(v, float) for v in message.values())


def test_an_empty_step_sends_nothing() -> None:
    assert fan_out([]) is None


def _request(**fields: Any) -> SubscriptionRequest:
    return SubscriptionRequest.model_validate({"action": "subscribe", **fields})


def test_channels_name_a_symbol_or_one_of_the_callers_accounts() -> None:
    me = Connection("c1", "acc_1", accounts=("acc_1", "acc_2"))
    assert channel_id(_request(channel="trades", symbol="AAPL"), me) == "trades:AAPL"
    assert channel_id(_request(channel="fills"), me) == "fills:acc_1"
    assert channel_id(_request(channel="orders", account_id="acc_2"), me) == "orders:acc_2"
    with pytest.raises(Forbidden):
        channel_id(_request(channel="fills", account_id="acc_3"), me)
    for bad in (
        _request(channel="book"),
        _request(channel="book", symbol="aapl"),
        _request(channel="book", symbol="AAPL", account_id="acc_1"),
        _request(channel="notifications", symbol="AAPL"),
    ):
        with pytest.raises(ValidationFailed):
            channel_id(bad, me)


def trade(price: str, ts: datetime = NOW, seq: int = 9) -> TradeEvent:
    event = dict(load_event("execution_events_fill.json")["events"][3])
    event.update(price=price, seq=seq, event_id=f"AAPL-{seq}", ts=ts.isoformat())
    return TradeEvent.model_validate(event)


def test_above_and_below_alerts_fire_at_or_beyond_their_price_after_they_were_set() -> None:
    above = new_alert("acc_1", CreateAlert(symbol="AAPL", type="above", price=Decimal("101")), None, NOW)
    below = new_alert("acc_1", CreateAlert(symbol="AAPL", type="below", price=Decimal("99")), None, NOW)
    assert not above.fires_on(trade("100.99")) and above.fires_on(trade("101")) and above.fires_on(trade("105"))
    assert not below.fires_on(trade("99.01")) and below.fires_on(trade("99"))
    # a trade from before the alert existed never fires it; a fired alert never fires again
    assert not above.fires_on(trade("200", NOW - timedelta(seconds=1)))
    fired = above.fired(trade("102"))
    assert (fired.status, fired.fired_price, fired.fired_by) == ("fired", Decimal("102"), "AAPL-9")
    assert not fired.fires_on(trade("103"))


def test_a_percent_move_is_measured_from_the_last_trade_at_creation() -> None:
    request = CreateAlert(symbol="AAPL", type="percent_move", percent=Decimal("2.5"))
    alert = new_alert("acc_1", request, Decimal("100.01"), NOW)
    # 100.01 x 1.025 = 102.51025 -> up to 102.5103; 100.01 x 0.975 = 97.50975 -> down to 97.5097
    assert (alert.upper, alert.lower) == (Decimal("102.5103"), Decimal("97.5097"))
    assert not alert.fires_on(trade("102.51")) and alert.fires_on(trade("102.52"))
    assert alert.fires_on(trade("97.50"))
    up_only = new_alert("acc_1", request.model_copy(update={"direction": "up"}), Decimal("100"), NOW)
    assert up_only.lower is None and not up_only.fires_on(trade("1"))
    with pytest.raises(ValidationFailed) as no_reference:
        new_alert("acc_1", request, None, NOW)
    assert no_reference.value.status == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"symbol": "AAPL", "type": "above"}, "price"),
        ({"symbol": "AAPL", "type": "above", "price": "1", "percent": "1"}, "percent"),
        ({"symbol": "AAPL", "type": "percent_move", "percent": "1", "price": "1"}, "price"),
        ({"symbol": "AAPL", "type": "percent_move", "percent": "1.001"}, "percent"),
        ({"symbol": "AAPL", "type": "below", "price": "1.00001"}, "price"),
    ],
)
def test_inconsistent_alerts_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        CreateAlert.model_validate(body)
    assert refused.value.field == field


def test_the_notification_of_an_alert_has_the_alerts_id() -> None:
    alert = new_alert("acc_1", CreateAlert(symbol="AAPL", type="above", price=Decimal("101")), None, NOW)
    message = alert_notification(alert.fired(trade("101.5")), trade("101.5"))
    assert message["notification_id"] == f"alert:{alert.alert_id}"
    assert (message["kind"], message["trade"]["price"]) == ("alert_triggered", "101.5")
    assert message["alert"]["status"] == "fired"


def test_a_settlement_batch_that_ends_is_told_once_and_nothing_else_is() -> None:
    batch = {"account_id": "acc_1", "item_id": "BAT#2026-01-07#AAPL#001", "kind": "batch", "symbol": "AAPL",
             "settle_date": "2026-01-07", "cash": Decimal("-4060.00"), "quantity": Decimal("40")}  # fmt: skip
    done = settlement_notification({**batch, "status": "settled"}, {**batch, "status": "started"}, NOW)
    assert done is not None
    assert done["notification_id"] == "settlement:2026-01-07#AAPL#001:settled"
    assert (done["kind"], done["settlement"]["cash"]) == ("settlement_settled", "-4060")
    failed = settlement_notification({**batch, "status": "failed", "failed_step": "post"}, None, NOW)
    assert failed is not None and failed["settlement"]["failed_step"] == "post"
    assert settlement_notification({**batch, "status": "started"}, None, NOW) is None
    assert settlement_notification({**batch, "status": "settled"}, {**batch, "status": "settled"}, NOW) is None
    assert settlement_notification({**batch, "kind": "obligation", "status": "settled"}, None, NOW) is None
