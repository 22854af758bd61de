"""A routed gtc / day order whose remainder rests on an external venue, on the routing service's
real tables (moto, from the template) and a real Redis: it rests per strategy (the venue most
likely to fill it, the highest maker rebate, the fastest), the engine is told it works there
(``working``, ``rest_venue``), the venues' later fills reach the engine with the order's running
totals (``sweep``), a cancel takes it off the venue and ends it, a ``day`` remainder expires at
the close, and every step is applied once however often it is repeated."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from marketdata_redis import redis_db, redis_url  # noqa: F401 - fixtures
from test_routing_entered import entered, routing  # noqa: F401 - fixtures
from test_routing_service import NOW, SPECS, read_stream, world  # noqa: F401 - fixtures

D = Decimal


def commands_sent(aws: Any) -> list[dict[str, Any]]:
    return [r for r in read_stream(aws, "OrderCommandsStream") if r.get("type") == "routed_fills"]


def sell_into(service: Any, venue: str, quantity: int, price: str, order_id: str) -> None:
    """Another member of ``venue`` sells ``quantity`` at ``price`` there (IOC)."""
    from nexus_routing.model import ChildOrder, Side

    config = next(v for v in service.venues.list() if v.name == venue)
    with service.simulated.open([config], account="someone-else") as live:
        live[venue].submit(ChildOrder(order_id, "MSFT", Side.SELL, D(quantity), D(price), "ioc"))


@pytest.fixture
def quiet(routing: Any) -> Any:  # noqa: F811 - the fixture imported above
    """The routing world with no outside flow on the venues (a fill model that never fills), so
    only the orders a test sends meet the resting remainders."""
    for venue in routing.venues.list():
        if not venue.internal:
            routing.venues.put(venue.model_copy(update={"fill_model": venue.fill_model.model_copy(
                update={"touch_probability": D(0)})}))
    return routing


def rest(service: Any, order_id: str, *, strategy: str = "SMART", tif: str = "gtc", limit: str = "299.97") -> Any:
    """A buy of 500 within ``limit``, below every venue's offer: nothing fills, it all rests."""
    return service.route_entered(entered(order_id, 500, limit, strategy=strategy, tif=tif))


@pytest.mark.parametrize(("strategy", "expected"), [
    ("LOWEST_COST", "Alpha"),  # the highest maker rebate (0.002)
    ("FASTEST", "Alpha"),  # the lowest latency (300 us)
    ("SMART", "NexusTrade"),  # the most likely to fill: the internal book, empty on the bid
    ("BEST_PRICE", "NexusTrade"),
])
def test_a_remainder_rests_on_the_venue_its_strategy_picks(
    aws: Any, routing: Any, strategy: str, expected: str  # noqa: F811 - the fixture imported above
) -> None:
    # WHEN a gtc buy of 500 within 299.97 (below every offer) is routed
    command = rest(routing, f"o-{strategy}", strategy=strategy)
    # THEN nothing filled, and the decision rests it on the venue its strategy picks
    parent, decisions = routing.decision_store.get(f"o-{strategy}")
    (resting,) = [c for d in decisions for c in d["chosen"] if c["action"] == "rest"]
    assert resting["venue"] == expected and command.fills == []
    if expected == "NexusTrade":
        # AND inside, the engine rests it on its own book at the limit
        assert (command.working, command.rest_venue, command.rest_price) == (False, None, D("299.97"))
        assert "working" not in parent
        return
    # AND outside, the engine is told the order works on that venue at its limit
    assert (command.working, command.end_reason, command.rest_venue, command.rest_price) == (
        True, "rest", expected, D("299.97"))
    assert command.rest_mic == {name: mic for name, mic, *_ in SPECS}[expected]
    # AND the venue shows it: 500 more wait at 299.97 behind the market maker's better bids
    book = routing.simulated.books([expected], "MSFT")[expected]
    assert {level.price: level.quantity for level in book.bids}[D("299.97")] >= 500
    # AND the parent is stored as working there
    assert parent["working"]["venue"] == expected and parent["status"] == "working"
    assert commands_sent(aws) == [json.loads(command.model_dump_json())]


def test_an_internalize_first_remainder_rests_inside(routing: Any) -> None:  # noqa: F811 - the fixture
    command = rest(routing, "o-inside", strategy="INTERNALIZE_FIRST")
    assert (command.working, command.rest_venue, command.rest_price) == (False, None, D("299.97"))


def test_the_venues_fills_reach_the_engine_with_the_orders_running_totals(aws: Any, quiet: Any) -> None:
    service = quiet
    first = rest(service, "o-fills", strategy="LOWEST_COST")
    assert first.rest_venue == "Alpha"
    # GIVEN someone sells 500 down to 299.97 on Alpha: the market maker's 100 at 299.99, 299.98
    # and 299.97 (ahead of the order in time), then 200 of the order
    sell_into(service, "Alpha", 500, "299.97", "s-1")
    # WHEN the venues are swept
    counts = service.sweep()
    # THEN the engine gets the 200 as the order's fills, a maker's, with the venue's rebate, the
    # order still working
    sent = commands_sent(aws)[1:]
    assert [c["command_id"] for c in sent] == ["route-o-fills-1"] and counts["commands"] == 1
    (command,) = sent
    assert (command["working"], command["end_reason"]) == (True, "working")
    assert [(f["price"], f["quantity"], f["liquidity"], D(f["fee"])) for f in command["fills"]] == [
        ("299.97", "200", "maker", D("-0.40"))]
    assert [(f["filled_quantity"], f["remaining_quantity"]) for f in command["fills"]] == [("200", "300")]
    # AND the parent shows the fill
    parent, _ = service.decision_store.get("o-fills")
    assert (parent["body"]["parent"]["filled"], parent["status"]) == ("200", "partially_filled")
    # AND a second sweep sends nothing more (the reports were applied once)
    service.sweep()
    assert len(commands_sent(aws)) == 2
    # WHEN the other 300 are sold there
    sell_into(service, "Alpha", 300, "299.97", "s-2")
    service.sweep()
    # THEN the last command fills the order and ends it
    last = commands_sent(aws)[-1]
    assert (last["command_id"], last["working"], last["end_reason"]) == ("route-o-fills-2", False, "filled")
    assert [(f["filled_quantity"], f["filled_notional"], f["remaining_quantity"]) for f in last["fills"]] == [
        ("500", "149985", "0")]
    parent, _ = service.decision_store.get("o-fills")
    assert (parent["status"], parent["working"]["ended"]) == ("filled", "filled")


def test_a_cancel_takes_the_remainder_off_the_venue_and_ends_the_order(aws: Any, quiet: Any) -> None:
    from nexus_common.errors import Conflict, NotFound
    from nexus_common.events import RouteCancelRequest

    service = quiet
    rest(service, "o-cancel", strategy="LOWEST_COST")
    sell_into(service, "Alpha", 400, "299.97", "s-3")  # 100 of the order fill before the cancel
    request = RouteCancelRequest(order_id="o-cancel", account_id="acc_1", ts=NOW)
    # WHEN its owner cancels it
    commands = service.cancel_entered(request)
    # THEN the fill the venue reported meanwhile goes first, then the order ends (cancelled by its user)
    assert [(c.command_id, c.working, c.end_reason) for c in commands] == [
        ("route-o-cancel-1", True, "working"), ("route-o-cancel-2", False, "user")]
    assert commands[0].fills[0].filled_quantity == 100 and commands[1].fills == []
    # AND nothing of it is left on Alpha
    book = service.simulated.books(["Alpha"], "MSFT")["Alpha"]
    assert all(level.price != D("299.97") for level in book.bids)  # the market maker's was taken
    # AND a repeated cancel sends nothing; another account's or a never-routed order's is refused
    assert service.cancel_entered(request) == []
    with pytest.raises(NotFound):
        service.cancel_entered(RouteCancelRequest(order_id="o-cancel", account_id="acc_2", ts=NOW))
    service.route_entered(entered("o-ioc", 100))
    with pytest.raises(Conflict):
        service.cancel_entered(RouteCancelRequest(order_id="o-ioc", account_id="acc_1", ts=NOW))
    assert [c["command_id"] for c in commands_sent(aws)][-3:] == ["route-o-cancel-1", "route-o-cancel-2",
                                                                 "route-o-ioc"]


def test_a_day_remainder_expires_at_the_close(aws: Any, quiet: Any) -> None:
    from nexus_routing.service import day_close

    service = quiet
    rest(service, "o-day", strategy="LOWEST_COST", tif="day")
    parent, _ = service.decision_store.get("o-day")
    close = day_close(NOW)
    assert datetime.fromisoformat(parent["working"]["expires_at"]) == close == datetime(2026, 11, 2, 21, tzinfo=UTC)
    # WHEN the venues are swept before the close, THEN it still works there
    service.clock.now = close - timedelta(seconds=1)
    assert service.sweep()["expired"] == 0
    # WHEN they are swept at the close, THEN it is taken off the venue and ends expired
    service.clock.now = close
    assert service.sweep()["expired"] == 1
    last = commands_sent(aws)[-1]
    assert (last["command_id"], last["end_reason"], last["working"], last["fills"]) == (
        "route-o-day-1", "expired", False, [])
    book = service.simulated.books(["Alpha"], "MSFT")["Alpha"]
    assert {level.price: level.quantity for level in book.bids}[D("299.97")] == 100  # the market maker's


def test_the_day_close_is_the_new_york_close_at_or_after_the_order() -> None:
    from nexus_routing.service import day_close

    # 10:30 New York (EST) -> 16:00 the same day; 17:00 -> 16:00 the next day; EDT in summer
    assert day_close(datetime(2026, 11, 2, 15, 30, tzinfo=UTC)) == datetime(2026, 11, 2, 21, 0, tzinfo=UTC)
    assert day_close(datetime(2026, 11, 2, 22, 0, tzinfo=UTC)) == datetime(2026, 11, 3, 21, 0, tzinfo=UTC)
    assert day_close(datetime(2026, 7, 1, 13, 0, tzinfo=UTC)) == datetime(2026, 7, 1, 20, 0, tzinfo=UTC)


def test_the_venues_outside_flow_fills_a_resting_remainder_over_the_sweeps(
    aws: Any, routing: Any  # noqa: F811 - the fixture imported above
) -> None:
    # GIVEN a remainder resting at the venue's best bid (299.99 on Gamma, with the market maker's)
    command = routing.route_entered(entered("o-flow", 100, "299.99", strategy="SMART", tif="gtc"))
    assert command.working
    # WHEN the venues are swept (each sweep one horizon of the fill model: 0.6 at the touch)
    for _ in range(30):
        routing.sweep()
        if commands_sent(aws)[-1]["end_reason"] == "filled":
            break
    # THEN the outside flow filled it (the same seeded flow every run), its fills' totals exact
    sent = commands_sent(aws)[1:]
    assert sent and sent[-1]["end_reason"] == "filled"
    quantities = [D(f["quantity"]) for c in sent for f in c["fills"]]
    assert sum(quantities) == 100 and sent[-1]["fills"][-1]["remaining_quantity"] == "0"


def test_another_orders_route_leaves_the_resting_childs_report_for_its_sweep(aws: Any, quiet: Any) -> None:
    service = quiet
    # GIVEN a remainder of 500 resting on Alpha at 299.97
    rest(service, "o-kept", strategy="LOWEST_COST")
    # WHEN another routed order sells through it (an IOC sell of 1000 within 299.97: the venues
    # bid 800 down to 299.97 besides it)
    service.route_entered(entered("o-seller", 1000, "299.97", side="sell", strategy="LOWEST_COST"))
    # THEN the resting order's fill stays with the venue until the sweep sends it, with its totals
    service.sweep()
    kept = [c for c in commands_sent(aws) if c["order_id"] == "o-kept"]
    assert kept[-1]["command_id"] == "route-o-kept-1"
    assert sum(D(f["quantity"]) for f in kept[-1]["fills"]) > 0


def test_the_handlers_cancel_and_sweep(aws: Any, quiet: Any, monkeypatch: Any) -> None:
    from nexus_common.events import RouteCancelRequest
    from nexus_routing import on_routing_requests, on_venue_sweep

    service = quiet
    monkeypatch.setattr(on_routing_requests, "service", lambda: service)
    monkeypatch.setattr(on_venue_sweep, "service", lambda: service)
    rest(service, "o-h", strategy="LOWEST_COST")
    assert on_venue_sweep.handler({"detail-type": "Scheduled Event"}, None)["commands"] == 0
    cancel = RouteCancelRequest(order_id="o-h", account_id="acc_1", ts=NOW).model_dump_json()
    other = RouteCancelRequest(order_id="o-h", account_id="acc_9", ts=NOW).model_dump_json()
    # WHEN the queue brings its cancel, a stranger's cancel and an unreadable message
    answer = on_routing_requests.handler({"Records": [
        {"messageId": "m-1", "body": cancel}, {"messageId": "m-2", "body": other},
        {"messageId": "m-3", "body": json.dumps({"type": "cancel_route"})}]}, None)
    # THEN the order ends cancelled, the stranger's is dropped (final), the unreadable one retried
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-3"}]}
    assert commands_sent(aws)[-1]["end_reason"] == "user"


def test_an_external_only_remainder_rests_outside_and_never_inside(quiet: Any) -> None:
    # WHEN a gtc EXTERNAL_ONLY buy below every offer is routed
    command = rest(quiet, "o-ext", strategy="EXTERNAL_ONLY")
    # THEN it works on an external venue
    assert command.working and command.rest_venue in {"Alpha", "Beta", "Gamma"}
    # WHEN every external venue is disabled and another one is routed
    for venue in quiet.venues.list():
        if not venue.internal:
            quiet.venues.put(venue.model_copy(update={"enabled": False}))
    ended = rest(quiet, "o-ext-2", strategy="EXTERNAL_ONLY")
    # THEN nothing rests on the internal book: it ends unfilled
    assert (ended.working, ended.rest_price, ended.internal_price, ended.fills) == (False, None, None, [])


def test_a_report_for_an_order_that_ended_books_nothing_and_is_counted(aws: Any, quiet: Any) -> None:
    from nexus_common.events import RouteCancelRequest
    from nexus_routing.model import ExecStatus, ExecutionReport, Fill, Liquidity, Side

    service = quiet
    rest(service, "o-late", strategy="LOWEST_COST")
    service.cancel_entered(RouteCancelRequest(order_id="o-late", account_id="acc_1", ts=NOW))
    sent = len(commands_sent(aws))
    # GIVEN a fill report of its child reaches Alpha's pending reports after the order ended
    alpha = next(v for v in service.venues.list() if v.name == "Alpha")
    with service.simulated.open([alpha]) as live:
        live["Alpha"]._reports.append(ExecutionReport(  # as a crash between store and save would leave it
            "Alpha:late", "Alpha", "o-late-1-1", "MSFT", Side.BUY, ExecStatus.PARTIALLY_FILLED,
            (Fill(D("299.97"), D(10), Liquidity.MAKER, D("-0.02")),), D(10), D(490), 0, NOW, None, "o-late"))
    # WHEN the venues are swept, THEN nothing is sent for it, and the sweep counts it
    counts = service.sweep()
    assert (counts["ended_reports"], counts["commands"]) == (1, 0)
    assert len(commands_sent(aws)) == sent
