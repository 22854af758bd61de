"""Pre-trade risk in the orders API, the risk and portfolio consumers, the settlement saga and the
portfolio API, under moto with the tables the template declares."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from nexus_common.fees import cash_amount, fee
from nexus_common.risk import reserve_amount, reserve_rate
from nexus_common.settings import reset_lazy
from nexus_portfolio.ledger import balances
from nexus_portfolio.repo import DynamoJournal, DynamoSettlements
from nexus_portfolio.service import Settlement
from portfolio_fakes import FEES, D, Money


@pytest.fixture
def money(aws: Any) -> Money:
    return Money(aws)


def limits_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    reset_lazy()


# -- pre-trade risk --------------------------------------------------------------------------


def test_an_order_beyond_buying_power_is_refused_and_nothing_is_reserved_or_sent(money: Money) -> None:
    # GIVEN an account with 1,000 USD
    money.account("acc_poor", "1000.00")
    before = money.item("acc_poor")
    # WHEN it buys 10 AAPL at 101.25 (1,012.50 USD and fees)
    status, body = money.post("acc_poor", symbol="AAPL", side="buy", type="limit", quantity="10", price="101.25")
    # THEN 422 insufficient_buying_power, and nothing is reserved, stored or sent
    assert status == 422 and body["error"]["code"] == "insufficient_buying_power"
    assert money.item("acc_poor") == before and money.orders() == [] and money.commands() == []


def test_a_buy_reserves_price_times_quantity_and_fees_with_one_write(money: Money) -> None:
    money.account("acc_b", "5000.00")
    status, body = money.post("acc_b", symbol="AAPL", side="buy", type="limit", quantity="10", price="101.25")
    assert status == 202, body
    reserved = reserve_amount(D(10), reserve_rate(D("101.25"), FEES.max_rate))
    assert reserved == D("1012.81")  # 1012.50 x 1.0003 = 1012.80375, rounded up
    item = money.item("acc_b")
    assert item["available_cash"] == D("5000.00") - reserved and item["cash"] == D("5000.00")
    assert item["buying#AAPL"] == 10 and item["opening_cash"] == D("5000.00")
    (order,) = money.orders()
    assert order["reserved"] is True and D(str(order["reserve_rate"])) == reserve_rate(D("101.25"), FEES.max_rate)
    # AND a second order that the rest cannot cover is refused
    status, body = money.post("acc_b", symbol="AAPL", side="buy", type="limit", quantity="40", price="101.25")
    assert (status, body["error"]["code"]) == (422, "insufficient_buying_power")
    assert len(money.commands()) == 1


@pytest.mark.parametrize(
    ("extra", "code"),
    [({"trading_enabled": False}, "trading_disabled"), ({"status": "suspended"}, "account_inactive")],
)
def test_the_kill_switch_and_inactive_accounts_refuse_every_order(money: Money, extra: dict[str, Any],
                                                                  code: str) -> None:
    money.account("acc_k", "100000.00", **extra)
    for side in ("buy", "sell"):
        status, body = money.post("acc_k", symbol="AAPL", side=side, type="limit", quantity="1", price="100")
        assert (status, body["error"]["code"]) == (422, code)
    assert money.orders() == [] and money.commands() == []


def test_an_account_at_its_open_order_limit_is_refused_until_an_order_ends(
    money: Money, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an account that may hold 2 open orders, and holds 2
    limits_env(monkeypatch, RISK_MAX_OPEN_ORDERS="2")
    money.account("acc_open", "100000.00", **{"sellable#AAPL": D(10), "pos#AAPL": D(10)})
    placed = []
    for side in ("buy", "sell"):
        status, body = money.post("acc_open", symbol="AAPL", side=side, type="limit", quantity="1", price="100")
        assert status == 202, body
        placed.append(body["order"]["order_id"])
    before = money.item("acc_open")
    assert len(before["reservations"]) == 2
    # WHEN it sends a third, of either side
    for side in ("buy", "sell"):
        status, body = money.post("acc_open", symbol="AAPL", side=side, type="limit", quantity="1", price="100")
        # THEN 422 max_open_orders_exceeded: nothing reserved, stored or sent
        assert (status, body["error"]["code"]) == (422, "max_open_orders_exceeded"), body
        assert "2 open orders" in body["error"]["message"]
    assert money.item("acc_open") == before
    assert len(money.orders()) == 2 and len(money.commands()) == 2
    # AND once one of them is cancelled (its reservation given back), a new order is taken
    money.consume(money.event("cancelled", order_id=placed[0], account_id="acc_open", remaining_quantity="1",
                              reason="user"))  # fmt: skip
    assert len(money.item("acc_open")["reservations"]) == 1
    status, body = money.post("acc_open", symbol="AAPL", side="buy", type="limit", quantity="1", price="100")
    assert status == 202, body


@pytest.mark.parametrize("value", ["0", "4001", "many"])
def test_an_open_order_limit_the_account_item_cannot_hold_is_refused_at_start(
    money: Money, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    from nexus_orders.settings import OrdersApiSettings
    from pydantic import ValidationError

    limits_env(monkeypatch, RISK_MAX_OPEN_ORDERS=value)
    with pytest.raises(ValidationError, match="risk_max_open_orders"):
        OrdersApiSettings()


def test_an_unknown_account_is_refused(money: Money) -> None:
    status, body = money.post("acc_nobody", symbol="AAPL", side="buy", type="limit", quantity="1", price="100")
    assert (status, body["error"]["code"]) == (422, "account_not_found")


def test_sells_need_holdings_or_the_short_limit(money: Money, monkeypatch: pytest.MonkeyPatch) -> None:
    limits_env(monkeypatch, RISK_SHORT_LIMIT="0")
    money.account("acc_s", "100000.00", **{"sellable#AAPL": D(5), "pos#AAPL": D(5)})
    status, body = money.post("acc_s", symbol="AAPL", side="sell", type="limit", quantity="6", price="100")
    assert (status, body["error"]["code"]) == (422, "insufficient_position")
    assert money.post("acc_s", symbol="AAPL", side="sell", type="limit", quantity="5", price="100")[0] == 202
    assert money.item("acc_s")["sellable#AAPL"] == 0
    status, body = money.post("acc_s", symbol="AAPL", side="sell", type="market", quantity="1")
    assert (status, body["error"]["code"]) == (422, "insufficient_position")
    # WITH a short limit of 3, three more can be sold short, not four
    limits_env(monkeypatch, RISK_SHORT_LIMIT="3")
    assert money.post("acc_s", symbol="AAPL", side="sell", type="limit", quantity="4", price="100")[0] == 422
    assert money.post("acc_s", symbol="AAPL", side="sell", type="limit", quantity="3", price="100")[0] == 202


def test_position_limit_fat_finger_and_collar(money: Money, monkeypatch: pytest.MonkeyPatch) -> None:
    limits_env(monkeypatch, RISK_POSITION_LIMIT="50", RISK_MAX_ORDER_QUANTITY="40", RISK_MAX_ORDER_VALUE="5000")
    money.account("acc_l", "1000000.00")
    money.last_trade("AAPL", "100.00")
    ok = {"symbol": "AAPL", "side": "buy", "type": "limit", "price": "100"}
    assert money.post("acc_l", **ok, quantity="30")[0] == 202
    cases = [
        ({**ok, "quantity": "30"}, "position_limit_exceeded"),  # 30 open + 30 > 50
        ({**ok, "quantity": "41"}, "max_quantity_exceeded"),
        ({**ok, "quantity": "20", "price": "110.01", "symbol": "AAPL"}, "price_outside_collar"),
        ({**ok, "quantity": "5", "price": "89.99"}, "price_outside_collar"),
    ]
    for body, code in cases:
        status, answer = money.post("acc_l", **body)
        assert (status, answer["error"]["code"]) == (422, code), body
    # a market buy reserves at the reference (no ask in the book: the last trade) + 5%
    status, answer = money.post("acc_l", symbol="AAPL", side="buy", type="market", quantity="21")
    assert (status, answer["error"]["code"]) == (422, "position_limit_exceeded")
    status, answer = money.post("acc_l", symbol="MSFT", side="buy", type="market", quantity="20")
    assert (status, answer["error"]["code"]) == (422, "no_reference_price")
    assert len(money.commands()) == 1


def test_a_command_that_cannot_be_sent_keeps_the_order_and_its_reservation_for_the_retry(
        money: Money, monkeypatch: pytest.MonkeyPatch) -> None:
    money.account("acc_f", "5000.00")
    limits_env(monkeypatch, ORDER_COMMANDS_STREAM="no-such-stream")
    status, body = money.post("acc_f", symbol="AAPL", side="buy", type="limit", quantity="10", price="100",
                              client_order_id="x-1")
    assert (status, body["error"]["code"]) == (503, "command_not_sent")
    # the record may have reached the stream all the same: the order stays stored and reserved
    # (the entry sweep's fence ends it if the engine never got it)
    item = money.item("acc_f")
    reserved = item["available_cash"]
    assert reserved < D("5000.00") and item["buying#AAPL"] == 10
    assert [o["status"] for o in money.orders()] == ["pending_new"] and money.commands() == []
    # AND the retry with the same client_order_id sends the stored order, reserving nothing more
    limits_env(monkeypatch, ORDER_COMMANDS_STREAM=money.env["ORDER_COMMANDS_STREAM"])
    status, body = money.post("acc_f", symbol="AAPL", side="buy", type="limit", quantity="10", price="100",
                              client_order_id="x-1")
    assert status == 200 and money.item("acc_f")["available_cash"] == reserved
    assert [c.type for c in money.commands()] == ["new"]
    # AND a repeat returns the first order without reserving twice
    assert money.post("acc_f", symbol="AAPL", side="buy", type="limit", quantity="10", price="100",
                      client_order_id="x-1")[0] == 200
    assert money.item("acc_f")["available_cash"] == reserved


# -- consumers -------------------------------------------------------------------------------


def test_a_fill_moves_cash_shares_and_fees_exactly_once(money: Money) -> None:
    # GIVEN a seller with 10 AAPL and a buyer with cash, both orders placed through the API
    money.account("acc_sel", "0.00", **{"sellable#AAPL": D(10), "pos#AAPL": D(10)})
    money.account("acc_buy", "10000.00")
    sell = money.post("acc_sel", symbol="AAPL", side="sell", type="limit", quantity="10", price="150.00")[1]
    buy = money.post("acc_buy", symbol="AAPL", side="buy", type="limit", quantity="6", price="151.00")[1]
    maker, taker = ("acc_sel", sell["order"]["order_id"]), ("acc_buy", buy["order"]["order_id"])
    # WHEN the trade of 4 @ 150 arrives twice, then an older event, then the cancel of the buy's rest
    trade = money.trade(maker, taker, "150.00", "4", "buy", maker_left="6", taker_left="2")
    money.consume(trade)
    money.consume(trade, money.event("cancelled", 0 + 1, order_id=taker[1], account_id="acc_buy",
                                     remaining_quantity="2", reason="user"))
    cancel = money.event("cancelled", order_id=taker[1], account_id="acc_buy", remaining_quantity="2", reason="user")
    money.consume(cancel, cancel)
    # THEN cash moved once: 600.00 and the fees (taker 3 bp = 0.18, maker 1 bp = 0.06)
    amount = cash_amount(D(4), D(150))
    buyer, seller = money.item("acc_buy"), money.item("acc_sel")
    assert buyer["cash"] == D("10000.00") - amount - fee(FEES, "taker", amount) == D("9399.82")
    assert seller["cash"] == amount - fee(FEES, "maker", amount) == D("599.94")
    # AND the buyer's reservation is fully released: available = cash, nothing open
    assert buyer["available_cash"] == buyer["cash"] and buyer["buying#AAPL"] == 4 and buyer["pos#AAPL"] == 4
    assert seller["pos#AAPL"] == 6 and seller["sellable#AAPL"] == 0  # 6 still offered
    # AND positions, one journal entry per fill, one obligation per fill
    _, body = money.get("/v1/positions", "acc_buy")
    (position,) = body["positions"]
    assert (position["quantity"], position["average_cost"], position["fees"]) == ("4", "150", "0.18")
    entries = DynamoJournal(money.env["LEDGER_TABLE"]).all()
    assert sorted(e.entry_id for e in entries) == ["fill:AAPL-1:maker", "fill:AAPL-1:taker"]
    totals = balances(entries)
    assert totals[("house", "fees", "USD")] == D("0.24") and totals[("house", "clearing", "USD")] == 0
    assert totals[("acc_buy", "pending_securities", "AAPL")] == 4
    obligations = DynamoSettlements(money.env["SETTLEMENTS_TABLE"]).all_obligations()
    assert {(o.account_id, o.settle_date, o.cash, o.quantity) for o in obligations} == {
        ("acc_buy", date(2026, 3, 9), D("-600.00"), D(4)),
        ("acc_sel", date(2026, 3, 9), D("600.00"), D(-4)),
    }


def test_an_older_event_changes_nothing(money: Money) -> None:
    money.account("acc_x", "10000.00")
    money.account("acc_y", "10000.00")
    newer = money.trade(("acc_x", "o1"), ("acc_y", "o2"), "100", "1", "buy", "0", "0", seq=7)
    older = money.trade(("acc_x", "o3"), ("acc_y", "o4"), "100", "5", "buy", "0", "0", seq=6)
    money.consume(newer, older)
    assert money.item("acc_y")["pos#AAPL"] == 1
    assert [p["quantity"] for p in money.get("/v1/positions", "acc_y")[1]["positions"]] == ["1"]
    assert len(DynamoJournal(money.env["LEDGER_TABLE"]).all()) == 2


def test_a_self_trade_is_one_write_per_account(money: Money) -> None:
    money.account("acc_z", "10000.00")
    money.consume(money.trade(("acc_z", "s1"), ("acc_z", "b1"), "100", "2", "buy", "0", "0"))
    item = money.item("acc_z")
    assert item["pos#AAPL"] == 0 and item["cash"] == D("10000.00") - D("0.02") - D("0.06")
    (position,) = money.get("/v1/positions", "acc_z")[1]["positions"]
    assert (position["quantity"], position["bought"], position["sold"]) == ("0", "2", "2")


# -- settlement saga -------------------------------------------------------------------------


class Failing:
    """Wraps a store or journal and fails one step, once."""

    def __init__(self, inner: Any, fail: str | None) -> None:
        self.inner, self.fail = inner, fail

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if name != self.fail:
            return method

        def failing(*args: Any, **kwargs: Any) -> Any:
            self.fail = None
            if name in ("claim", "mark_settled"):
                method(*args, **kwargs)  # it half happened before failing: the worst case
            raise ConnectionError(f"{name} failed")

        return failing


@pytest.mark.parametrize("step", ["claim", "post", "mark_settled", "finish"])
def test_a_failed_settlement_step_is_compensated_and_settles_on_the_next_run(money: Money, step: str) -> None:
    money.account("acc_sel", "0.00")
    money.account("acc_buy", "10000.00")
    money.consume(
        money.trade(("acc_sel", "s"), ("acc_buy", "b"), "150.00", "4", "buy", "0", "0"),
        money.trade(("acc_sel", "s2"), ("acc_buy", "b2"), "151.00", "1", "buy", "0", "0"),
    )
    store = DynamoSettlements(money.env["SETTLEMENTS_TABLE"])
    journal = DynamoJournal(money.env["LEDGER_TABLE"])
    clock = lambda: datetime(2026, 3, 9, 22, 30, tzinfo=UTC)  # noqa: E731
    failing_store = Failing(store, step if step != "post" else None)
    failing_journal = Failing(journal, "post" if step == "post" else None)
    # WHEN T+1 comes, nothing is due
    assert Settlement(store, journal, clock).run(date(2026, 3, 6)).to_dict()["settled"] == 0
    # WHEN the T+2 run fails at the step (for the first of the two nets: the buyer's)
    report = Settlement(failing_store, failing_journal, clock).run(date(2026, 3, 9))
    (failed,) = report.failed
    assert failed.account_id == "acc_buy" and failed.failed_step == ("mark" if step == "mark_settled" else step)
    assert [b.account_id for b in report.settled] == ["acc_sel"]
    buyer = [o for o in store.all_obligations() if o.account_id == "acc_buy"]
    if step != "finish":
        # THEN nothing of the buyer's is half settled: obligations pending, the ledger nets to nothing
        assert {o.status for o in buyer} == {"pending"}
        settled = balances(e for e in journal.all() if e.kind != "fill" and e.account_id == "acc_buy")
        assert all(v == 0 for v in settled.values())
    # AND the next run settles both nets (recovering what was left started)
    again = Settlement(store, journal, clock).run(date(2026, 3, 9))
    assert len(again.settled) == 1 and len(again.recovered) == (1 if step == "finish" else 0)
    assert {o.status for o in store.all_obligations()} == {"settled"}
    totals = balances(journal.all())
    assert totals[("acc_buy", "cash", "USD")] == D("-751.00") - D("0.18") - D("0.05")
    assert totals.get(("acc_buy", "pending_cash", "USD"), D(0)) == 0
    assert totals[("acc_buy", "securities", "AAPL")] == 5 and totals[("acc_sel", "securities", "AAPL")] == -5
    status, body = money.get("/v1/settlements", "acc_buy", {"status": "settled"})
    assert status == 200 and len(body["obligations"]) == 2
    assert any(b["status"] == "settled" and b["cash"] == "-751" for b in body["batches"])


# -- portfolio API ---------------------------------------------------------------------------


def test_portfolio_shows_cash_reserved_available_positions_and_pnl(money: Money) -> None:
    money.account("acc_p", "10000.00")
    money.account("acc_q", "10000.00")
    money.consume(money.trade(("acc_q", "s"), ("acc_p", "b"), "100.00", "10", "buy", "0", "0"))
    money.last_trade("AAPL", "100.00")
    money.table("TRADES_TABLE").put_item(Item={"symbol": "AAPL", "seq": 99, "price": D("103.50"), "quantity": D(1)})
    assert money.post("acc_p", symbol="AAPL", side="buy", type="limit", quantity="1", price="100.00")[0] == 202
    status, body = money.get("/v1/portfolio", "acc_p")
    assert status == 200
    portfolio = body["portfolio"]
    assert (portfolio["cash"], portfolio["reserved"], portfolio["available"]) == ("8999.7", "100.03", "8899.67")
    (position,) = portfolio["positions"]
    assert (position["quantity"], position["unrealized_pnl"], position["market_value"]) == ("10", "35", "1035")
    assert portfolio["totals"]["equity"] == "10034.7"
    status, body = money.get("/v1/ledger", "acc_p", {"from": "2026-03-05", "to": "2026-03-05"})
    assert status == 200 and [e["entry_id"] for e in body["entries"]] == ["fill:AAPL-1:taker"]
    assert money.get("/v1/ledger", "acc_p", {"from": "2026-03-06"})[1]["entries"] == []
    status, body = money.get("/v1/ledger", "acc_p", {"from": "yesterday"})
    assert (status, body["error"]["field"]) == (400, "from")
    status, body = money.get("/v1/settlements", "acc_p", {"status": "lost"})
    assert (status, body["error"]["code"]) == (400, "invalid_field")
