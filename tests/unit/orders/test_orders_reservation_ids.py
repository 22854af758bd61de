"""The account item's set of reservation ids under moto (tables from the template): a reservation
write applied twice holds once, a release applied twice gives back once, a reservation write
whose answer is lost is kept with its order and answered 503 (the retry sends it), the risk
consumer removes the id of what ends, and reconciliation reports an id that nothing holds.
Tests read GIVEN / WHEN / THEN."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from nexus_common.risk import RESERVATIONS, RiskRefused, reserve_amount, reserve_rate
from nexus_orders.api import service
from nexus_orders.repo import DynamoRiskBook
from nexus_orders.risk import Reservation
from orders_fakes import FEE_BUFFER, OCO, World

from nexus.cli_money import reconcile_tables

D = Decimal
BUY = {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "10", "price": "100.00"}
AMOUNT = reserve_amount(D(10), reserve_rate(D("100.00"), FEE_BUFFER))


@pytest.fixture
def world(aws: Any) -> World:
    return World(aws)


def held(world: World, account_id: str = "acc_1") -> set[str]:
    return set(world.item(account_id).get(RESERVATIONS, set()))


class LostAnswer:
    """The accounts table as the orders API's risk book sees it when its first ``UpdateItem``
    reaches DynamoDB but the answer is lost: ``retried``, the SDK sends the same request again and
    that answer arrives; else the call raises botocore's ``ReadTimeoutError``."""

    def __init__(self, table: Any, retried: bool) -> None:
        self.table = table
        self.retried = retried
        self.lost = 1
        self.calls = 0

    def update_item(self, **request: Any) -> Any:
        self.calls += 1
        if not self.lost:
            return self.table.update_item(**request)
        self.lost -= 1
        self.table.update_item(**request)  # applied on the server...
        if self.retried:
            return self.table.update_item(**request)  # ... and applied again by the SDK's retry
        raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")  # ... answer lost

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


def lose_first_answer(retried: bool) -> LostAnswer:
    risk = service().risk
    assert risk is not None and isinstance(risk.book, DynamoRiskBook)
    wrapped = LostAnswer(risk.book.table, retried)
    risk.book._table = wrapped
    return wrapped


def test_a_reservation_written_twice_holds_once_and_a_release_twice_gives_back_once(world: World) -> None:
    # GIVEN an account with 1,000 USD and the risk book on its table
    world.account("acc_2", "1000.00")
    book = DynamoRiskBook(world.env["ACCOUNTS_TABLE"])
    risk = service().risk
    assert risk is not None
    limits = risk.limits
    reservation = Reservation("acc_2", "AAPL", "buy", D(5), D("500.15"), reservation_id="order-1")
    # WHEN the same reservation write is applied twice (an SDK retry of a write that went through)
    book.reserve(reservation, limits)
    book.reserve(reservation, limits)
    # THEN it is held once, under its id
    item = world.item("acc_2")
    assert item["available_cash"] == D("499.85")
    assert item["buying#AAPL"] == 5
    assert held(world, "acc_2") == {"order-1"}
    # and a second order beyond what is left is still refused, with nothing written
    other = Reservation("acc_2", "AAPL", "buy", D(5), D("500.15"), reservation_id="order-2")
    with pytest.raises(RiskRefused) as refused:
        book.reserve(other, limits)
    assert refused.value.code == "insufficient_buying_power"
    assert held(world, "acc_2") == {"order-1"}
    # WHEN it is released twice, and a reservation never made is released
    assert book.release(reservation) is True
    assert book.release(reservation) is False
    assert book.release(other) is False
    # THEN it is given back once and nothing else moves
    item = world.item("acc_2")
    assert item["available_cash"] == item["cash"] == D("1000.00")
    assert item["buying#AAPL"] == 0
    assert RESERVATIONS not in item


@pytest.mark.parametrize("route", ["/v1/orders", "/v1/orders/oco"])
def test_a_reservation_whose_answer_is_lost_is_kept_with_its_order_and_sent_by_the_retry(
    world: World, route: str
) -> None:
    # GIVEN acc_1 (1,000,000 USD, 100 AAPL) and a first reservation write that applies but whose
    # answer never comes back (a read timeout)
    wrapped = lose_first_answer(retried=False)
    body = BUY if route == "/v1/orders" else OCO
    # WHEN acc_1 places an order (or an OCO group)
    status, answer = world.request("POST", route, {**body, "client_order_id": "lost-1"})
    # THEN a clean 503 error body, no raw 500
    assert status == 503, answer
    assert answer == {"error": {"code": "risk_unavailable", "message": answer["error"]["message"]}}
    assert "retry" in answer["error"]["message"]
    # and nothing was given back (a concurrent retry may find the reservation and send the order):
    # the stored order names the one reservation held, and nothing was sent
    assert wrapped.calls == 1
    assert len(held(world)) == 1
    assert {o["status"] for o in world.orders()} == {"pending_new"}
    assert world.commands() == []
    # WHEN the client retries with the same client_order_id (the answers come back now)
    status, answer = world.request("POST", route, {**body, "client_order_id": "lost-1"})
    # THEN the stored order is answered and sent, reserved once
    assert status == 200, answer
    assert len(held(world)) == 1
    assert [c.type for c in world.commands()] == ["new" if route == "/v1/orders" else "oco"]


def test_a_reservation_retried_by_the_sdk_after_a_lost_answer_is_in_place_not_refused(world: World) -> None:
    # GIVEN an account that can afford exactly one buy of 10 @ 100, and a first reservation write
    # that applies, loses its answer, and is sent again by the SDK (the retry finds the id held)
    world.account("acc_2", str(AMOUNT))
    lose_first_answer(retried=True)
    # WHEN acc_2 places the buy
    status, answer = world.request("POST", "/v1/orders", BUY, account="acc_2")
    # THEN it is accepted (the retry's refused condition is the reservation in place), held once
    assert status == 202, answer
    order_id = answer["order"]["order_id"]
    item = world.item("acc_2")
    assert item["available_cash"] == 0 and item["buying#AAPL"] == 10
    assert held(world, "acc_2") == {order_id}
    assert [command.order_id for command in world.commands()] == [order_id]


def test_the_risk_consumer_removes_the_ids_of_a_replace_and_of_the_order_that_ends(world: World) -> None:
    # GIVEN the risk consumer's environment too, and a buy 10 @ 100 replaced to 15 @ 101
    from lambda_events import FakeLambdaContext, kinesis_event
    from nexus_common.settings import reset_lazy
    from nexus_risk import on_execution_events as risk_consumer

    world.aws.use_function_env("RiskConsumerFunction")
    reset_lazy()
    status, answer = world.request("POST", "/v1/orders", BUY)
    assert status == 202, answer
    order_id = answer["order"]["order_id"]
    assert held(world) == {order_id}
    status, answer = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "15", "price": "101.00"},
                                   order_id=order_id)  # fmt: skip
    assert status == 202, answer
    (replace_id,) = held(world) - {order_id}
    assert replace_id.startswith(f"{order_id}~r1.")
    ts = "2026-03-05T15:00:00.000000Z"

    def event(seq: int, kind: str, correlation: str, **fields: Any) -> dict[str, Any]:
        return {"event_id": f"AAPL-{seq}", "type": kind, "version": 1, "ts": ts, "correlation_id": correlation,
                "symbol": "AAPL", "seq": seq, "epoch": 0, "order_id": order_id, "account_id": "acc_1", **fields}

    def deliver(*events: dict[str, Any]) -> None:
        answer = risk_consumer.handler(kinesis_event({"events": list(events)}), FakeLambdaContext())
        assert answer == {"batchItemFailures": []}, answer

    # WHEN the engine's replaced event reaches the risk consumer
    deliver(event(1, "replaced", f"{order_id}:replace:1", price="101", quantity="15", remaining_quantity="15",
                  kept_priority=False, reason="user"))  # fmt: skip
    # THEN the replace's own id is gone; the order's stays
    assert held(world) == {order_id}
    # WHEN the order is cancelled (delivered twice)
    cancelled = event(2, "cancelled", f"{order_id}:cancel:x", remaining_quantity="15", reason="user")
    deliver(cancelled)
    deliver(cancelled)
    # THEN no id is held and everything is given back, once
    item = world.item()
    assert RESERVATIONS not in item
    assert item["available_cash"] == item["cash"] == D("1000000.00")
    assert item["buying#AAPL"] == 100


def test_a_replace_retried_with_other_terms_after_a_stop_reserves_in_full_under_an_id_of_its_own(
    world: World,
) -> None:
    # GIVEN an open buy of 10, and a replace to 15 that stopped right after its reservation (its
    # Lambda ended before the replace began: the order does not know of it)
    status, answer = world.request("POST", "/v1/orders", BUY)
    assert status == 202, answer
    order_id = answer["order"]["order_id"]
    order = service().get("acc_1", order_id)
    service().risk.reserve_replace(order, D(15), D("100.00"), None, 1)
    assert world.item()["buying#AAPL"] == 115  # 100 held + 10 for the order + 5 for the stopped replace
    (stopped,) = held(world) - {order_id}
    # WHEN the client retries the replace with other terms: 20 shares
    status, answer = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "20"}, order_id=order_id)
    assert status == 202, answer
    # THEN the retry reserved its 10 more shares in full, not counting on the stopped attempt's 5
    # (which stay held, under their own id: an over-reservation, never an under-reservation)
    assert world.item()["buying#AAPL"] == 100 + 10 + 5 + 10
    retried = held(world) - {order_id, stopped}
    assert len(retried) == 1 and next(iter(retried)).startswith(f"{order_id}~r1.")
    # AND the terms item names the id the risk consumer gives back or ends
    terms = world.ddb.Table(world.env["ORDERS_TABLE"]).get_item(Key={"order_id": f"{order_id}~r1"})["Item"]
    assert terms["reservation_id"] in retried
    # AND reconciliation reports the stopped attempt's id as leaked, and only that
    breaks = [b for b in reconcile_tables(world.aws.table_name).breaks if "leaked reservation" in b]
    assert breaks == [f"leaked reservation {stopped} of acc_1: held on the account item, no open order holds it"]


def test_a_replace_retried_with_the_same_terms_after_a_stop_finds_its_reservation_in_place(world: World) -> None:
    # GIVEN a replace to 15 that stopped right after its reservation
    status, answer = world.request("POST", "/v1/orders", BUY)
    order_id = answer["order"]["order_id"]
    service().risk.reserve_replace(service().get("acc_1", order_id), D(15), D("100.00"), None, 1)
    # WHEN the client retries it as it was
    status, answer = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "15"}, order_id=order_id)
    assert status == 202, answer
    # THEN the 5 shares are held once, under the one id the replace's terms name
    assert world.item()["buying#AAPL"] == 100 + 10 + 5
    terms = world.ddb.Table(world.env["ORDERS_TABLE"]).get_item(Key={"order_id": f"{order_id}~r1"})["Item"]
    assert held(world) == {order_id, terms["reservation_id"]}


@pytest.mark.parametrize("other", ["20", "15"])
def test_a_replace_that_lost_the_race_for_its_number_gives_back_only_what_the_winner_does_not_hold(
    world: World, monkeypatch: pytest.MonkeyPatch, other: str
) -> None:
    from nexus_orders.models import ReplaceOrderRequest

    # GIVEN an open buy of 10, read by a second replace request before the first (to 15) began
    status, answer = world.request("POST", "/v1/orders", BUY)
    order_id = answer["order"]["order_id"]
    stale = service().get("acc_1", order_id)
    status, answer = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "15"}, order_id=order_id)
    assert status == 202, answer
    (winner,) = held(world) - {order_id}
    # WHEN the second request (to 20: other amounts; or to 15: the same) reserves for the same
    # replace number and then finds the order changed
    monkeypatch.setattr(service(), "get", lambda account_id, oid: stale)
    with pytest.raises(Exception) as refused:
        service().replace("acc_1", order_id, ReplaceOrderRequest(quantity=D(other)))
    assert getattr(refused.value, "code", None) == "replace_pending"
    # THEN what it reserved under an id of its own is given back; the same id is the winner's, kept
    assert held(world) == {order_id, winner}
    assert world.item()["buying#AAPL"] == 100 + 10 + 5


def _transient(*args: Any, **kwargs: Any) -> Any:
    raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")


def _open_buy(world: World) -> str:
    """An open buy of 10 AAPL at 100.00 through the API: its order id."""
    status, answer = world.request("POST", "/v1/orders", BUY)
    assert status == 202, answer
    return str(answer["order"]["order_id"])


def _replace_holds(world: World, order_id: str) -> str:
    """The reservation id replace 1 of the order holds, as its terms item names it."""
    terms = world.ddb.Table(world.env["ORDERS_TABLE"]).get_item(Key={"order_id": f"{order_id}~r1"})["Item"]
    return str(terms["reservation_id"])


def test_a_request_that_found_its_id_in_place_does_not_begin_on_it_once_its_writer_gave_it_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus_common.errors import Unavailable
    from nexus_orders.models import ReplaceOrderRequest

    # GIVEN an open buy of 10, and two requests replacing it to 15: the same replace number and
    # the same amounts, so the same reservation id
    order_id = _open_buy(world)
    svc = service()
    reserve, begin = svc.risk.reserve_replace, svc.orders.begin_replace
    second: dict[str, Any] = {}

    def first_request_meanwhile(*args: Any) -> Any:
        # the first request writes the id; the second finds it in place; the first fails to
        # begin (a transient error) and gives the id back, before the second begins
        monkeypatch.setattr(svc.risk, "reserve_replace", reserve)

        def second_reserves_then_first_fails(*a: Any, **k: Any) -> Any:
            second["reserved"] = reserve(*args)
            _transient()

        monkeypatch.setattr(svc.orders, "begin_replace", second_reserves_then_first_fails)
        with pytest.raises(Unavailable):
            svc.replace("acc_1", order_id, ReplaceOrderRequest(quantity=D(15)))
        monkeypatch.setattr(svc.orders, "begin_replace", begin)
        assert held(world) == {order_id}  # given back: nothing had begun
        assert second["reserved"][3] is False  # the second found it in place
        return second["reserved"]

    monkeypatch.setattr(svc.risk, "reserve_replace", first_request_meanwhile)
    # WHEN the second request then goes on to begin its replace
    with pytest.raises(Exception) as refused:
        svc.replace("acc_1", order_id, ReplaceOrderRequest(quantity=D(15)))
    # THEN it does not begin on the id given back (409: read the order and retry), and nothing is
    # held for a replace that is not pending
    assert getattr(refused.value, "code", None) == "replace_pending"
    assert held(world) == {order_id}
    assert world.item()["buying#AAPL"] == 100 + 10
    assert not service().get("acc_1", order_id).replace_pending
    # AND the client's retry reserves and begins it
    status, answer = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "15"}, order_id=order_id)
    assert status == 202, answer
    assert world.item()["buying#AAPL"] == 100 + 10 + 5
    assert held(world) == {order_id, _replace_holds(world, order_id)}


def test_a_request_that_found_its_id_in_place_and_failed_to_begin_leaves_it_to_its_writer(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus_common.errors import Unavailable
    from nexus_orders.models import ReplaceOrderRequest

    # GIVEN an open buy of 10, and a request replacing it to 15 that has written its reservation
    order_id = _open_buy(world)
    svc = service()
    begin = svc.orders.begin_replace

    def second_request_fails_first(*args: Any, **kwargs: Any) -> Any:
        # before it begins, a second request of the same number and amounts finds the id in
        # place and fails to begin (a transient error)
        (rid,) = held(world) - {order_id}
        monkeypatch.setattr(svc.orders, "begin_replace", _transient)
        with pytest.raises(Unavailable):
            svc.replace("acc_1", order_id, ReplaceOrderRequest(quantity=D(15)))
        assert held(world) == {order_id, rid}  # the second gave back nothing: it wrote nothing
        monkeypatch.setattr(svc.orders, "begin_replace", begin)
        return begin(*args, **kwargs)

    monkeypatch.setattr(svc.orders, "begin_replace", second_request_fails_first)
    # WHEN the first request begins its replace
    updated = svc.replace("acc_1", order_id, ReplaceOrderRequest(quantity=D(15)))
    # THEN it began with its reservation held once
    assert updated.replace_pending
    assert held(world) == {order_id, _replace_holds(world, order_id)}
    assert world.item()["buying#AAPL"] == 100 + 10 + 5


def test_a_replace_that_failed_to_begin_keeps_the_id_a_request_of_its_number_began_holding(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus_common.errors import Unavailable
    from nexus_orders.models import ReplaceOrderRequest

    # GIVEN an open buy of 10, and a request replacing it to 15 whose begin fails (a transient
    # error) after another request of the same number and amounts began, holding the same id
    order_id = _open_buy(world)
    svc = service()
    begin = svc.orders.begin_replace

    def other_began_first(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(svc.orders, "begin_replace", begin)
        status, answer = world.request("PATCH", "/v1/orders/{order_id}", {"quantity": "15"}, order_id=order_id)
        assert status == 202, answer
        _transient()

    monkeypatch.setattr(svc.orders, "begin_replace", other_began_first)
    # WHEN the first request gives its reservation back
    with pytest.raises(Unavailable):
        svc.replace("acc_1", order_id, ReplaceOrderRequest(quantity=D(15)))
    # THEN the id stays held: the replace that began holds it
    assert held(world) == {order_id, _replace_holds(world, order_id)}
    assert world.item()["buying#AAPL"] == 100 + 10 + 5


def test_reconcile_reports_a_leaked_reservation_and_is_clean_otherwise(world: World) -> None:
    # GIVEN a fresh account with one open buy placed through the API (its id held)
    world.ddb.Table(world.env["ACCOUNTS_TABLE"]).delete_item(Key={"account_id": "acc_1"})
    world.account("acc_2", "5000.00")
    status, answer = world.request("POST", "/v1/orders", BUY, account="acc_2")
    assert status == 202, answer
    order_id = answer["order"]["order_id"]
    world.ddb.Table(world.env["ORDERS_TABLE"]).update_item(
        Key={"order_id": order_id}, UpdateExpression="SET #s = :new",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":new": "new"},
    )  # the engine took it (the orders consumer's write)
    # WHEN reconciliation runs
    result = reconcile_tables(world.aws.table_name)
    # THEN no break, and the open order's id is accounted for
    assert result.breaks == []
    assert result.figures["reserved_without_id"] == 0
    # WHEN a reservation id that no open order holds is on the account item (a write whose
    # answer was lost and that nothing gave back)
    world.ddb.Table(world.env["ACCOUNTS_TABLE"]).update_item(
        Key={"account_id": "acc_2"}, UpdateExpression="ADD #r :ids",
        ExpressionAttributeNames={"#r": RESERVATIONS}, ExpressionAttributeValues={":ids": {"sim1-38-buy"}},
    )
    result = reconcile_tables(world.aws.table_name)
    # THEN reconciliation reports it as a leaked reservation
    assert result.breaks == [
        "leaked reservation sim1-38-buy of acc_2: held on the account item, no open order holds it"
    ]


# -- in memory (``orders_fakes.venue``): failures after the reservation, and a raced duplicate ----


def test_an_order_that_cannot_be_stored_gives_its_reservation_back_by_id_and_answers_503() -> None:
    from nexus_common.errors import Unavailable
    from orders_fakes import order, venue

    # GIVEN alice with cash, and an orders table whose next put fails (its answer lost)
    v = venue(alice="100000.00")
    put = v.orders.put_new

    def lost_put(placed: Any) -> bool:
        put(placed)  # stored, then the answer is lost
        raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    v.orders.put_new = lost_put  # type: ignore[method-assign]
    # WHEN alice places a buy
    with pytest.raises(Unavailable) as failed:
        v.service.place("alice", order(side="buy", type="limit", quantity="10", price="100.00", client_order_id="p"))
    # THEN 503 order_not_stored: the pending order is forgotten and the reservation given back by id
    assert failed.value.code == "order_not_stored" and failed.value.status == 503
    assert v.orders.items == {}
    assert v.accounts["alice"].reserved_cash == 0 and v.accounts["alice"].reserved_buy == 0
    assert v.accounts["alice"].reservations == set()
    assert v.events == []  # nothing sent


def test_a_duplicate_meets_the_stored_order_at_its_put_and_keeps_the_one_reservation_of_the_stored_order() -> None:
    from orders_fakes import order, venue

    # GIVEN alice's buy with client_order_id "dup", stored and reserved
    v = venue(alice="100000.00")
    request = order(side="buy", type="limit", quantity="10", price="90.00", client_order_id="dup")
    first, created = v.service.place("alice", request)
    assert created
    reserved = v.accounts["alice"].reserved_cash
    assert reserved > 0 and v.accounts["alice"].reservations == {first.order_id}
    # WHEN the same request comes again (a retry, or one sent concurrently): the rules pass it, so
    # it is not looked for before its conditional put, which finds the stored order
    get = v.orders.get
    looked: list[str] = []

    def counted_get(order_id: str) -> Any:
        looked.append(order_id)
        return get(order_id)

    v.orders.get = counted_get  # type: ignore[method-assign]
    writes = v.book.writes
    again, created = v.service.place("alice", request)
    assert looked == [first.order_id] and v.book.writes == writes  # read once, after the put: nothing reserved
    # THEN it answers the first order; its reservation write held nothing more (the id was held),
    # and nothing was given back: the stored order keeps its one reservation
    assert not created and again.order_id == first.order_id
    assert v.accounts["alice"].reserved_cash == reserved
    assert v.accounts["alice"].reservations == {first.order_id}
