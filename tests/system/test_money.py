"""Money end to end against the whole local platform: pre-trade risk refuses what an account
cannot afford, a fill moves cash, shares and fees exactly once, the trade settles on T+2, and a
simulated day reconciles with no break."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from helpers import commands_sent, eventually
from http_client import Api

pytestmark = pytest.mark.system

D = Decimal


@pytest.fixture(scope="module")
def local_platform() -> Iterator[Any]:
    """A platform of its own: the simulated day moves every demo symbol's last price (and so the
    price collars) far from what the other system tests trade at."""
    from nexus.local.runtime import Options, free_port, running

    options = Options(
        api_port=free_port(), aws_port=free_port(), ws_port=free_port(), stage="money", demo=True, write_state=False
    )
    with running(options) as platform:
        yield platform


def _account(platform: Any, name: str, cash: str) -> tuple[str, Api]:
    from nexus.local.demo import create_account

    created = create_account(platform.table, name, D(cash))
    return created["account_id"], Api(platform.api_url, created["api_key"])


def _cli_env(platform: Any) -> dict[str, str]:
    return {**os.environ, "NEXUS_STAGE": platform.options.stage, "NEXUS_STATE_DIR": "/nonexistent",
            "AWS_ENDPOINT_URL": platform.aws_endpoint}


def test_an_order_beyond_buying_power_is_refused_and_nothing_is_sent(local_platform: Any) -> None:
    _, poor = _account(local_platform, "Poor", "100.00")
    sent = commands_sent(local_platform)
    answer = poor.post("/v1/orders", {"symbol": "GOOGL", "side": "buy", "type": "limit", "quantity": "1",
                                      "price": "150.00"})
    assert answer.status == 422, answer.body
    assert answer.body["error"]["code"] == "insufficient_buying_power"
    assert commands_sent(local_platform) == sent
    portfolio = poor.get("/v1/portfolio").body["portfolio"]
    assert (portfolio["cash"], portfolio["reserved"], portfolio["available"]) == ("100", "0", "100")


def test_a_fill_moves_cash_shares_and_fees_once_and_settles_on_t_plus_2(local_platform: Any) -> None:
    # GIVEN a seller and a buyer
    seller_id, seller = _account(local_platform, "Money Seller", "10000.00")
    buyer_id, buyer = _account(local_platform, "Money Buyer", "10000.00")
    # WHEN the seller rests 10 AMZN at 120.00 and the buyer takes 5 at 121.00
    sell = seller.post("/v1/orders", {"symbol": "AMZN", "side": "sell", "type": "limit", "quantity": "10",
                                      "price": "120.00"})
    assert sell.status == 202, sell.body
    eventually(lambda: seller.get(f"/v1/orders/{sell.body['order']['order_id']}").body["order"]["status"],
               lambda s: s == "new")
    buy = buyer.post("/v1/orders", {"symbol": "AMZN", "side": "buy", "type": "limit", "quantity": "5",
                                    "price": "121.00"})
    assert buy.status == 202, buy.body
    # THEN the buyer pays 600.00 + 0.18 taker fee (3 bp), the seller gets 600.00 - 0.06 (1 bp)
    bought = eventually(lambda: buyer.get("/v1/portfolio").body["portfolio"],
                        lambda p: p["positions"] and p["cash"] == "9399.82" and p["reserved"] == "0")
    assert (bought["cash"], bought["available"], bought["reserved"]) == ("9399.82", "9399.82", "0")
    (position,) = bought["positions"]
    assert (position["symbol"], position["quantity"], position["average_cost"], position["fees"]) == (
        "AMZN", "5", "120", "0.18")
    sold = eventually(lambda: seller.get("/v1/portfolio").body["portfolio"], lambda p: p["cash"] == "10599.94")
    assert sold["cash"] == "10599.94" and sold["positions"][0]["quantity"] == "-5"
    # AND the ledger holds one balanced entry per side
    entries = buyer.get("/v1/ledger").body["entries"]
    assert [e["kind"] for e in entries] == ["fill"]
    assert sum(D(leg["amount"]) for leg in entries[0]["legs"] if leg["asset"] == "USD") == 0
    # AND the obligation is due T+2 business days after the New York trade date
    (obligation,) = buyer.get("/v1/settlements?status=pending").body["obligations"]
    assert obligation["cash"] == "-600" and obligation["quantity"] == "5"
    due = date.fromisoformat(obligation["settle_date"])
    # WHEN the settlement run runs the day before, nothing settles; on the due date, it settles
    from nexus_common.calendar import add_business_days

    trade_day = date.fromisoformat(obligation["trade_date"])
    assert due == add_business_days(trade_day, 2)
    before = local_platform.lambdas.invoke("SettlementFunction", {"as_of": add_business_days(trade_day, 1).isoformat()})
    assert before.ok
    assert buyer.get("/v1/settlements?status=pending").body["obligations"] != []
    run = local_platform.lambdas.invoke("SettlementFunction", {"as_of": due.isoformat()})
    assert run.ok and run.payload["failed"] == 0, run.payload
    assert buyer.get("/v1/settlements?status=pending").body["obligations"] == []
    assert len(buyer.get("/v1/settlements?status=settled").body["obligations"]) == 1
    kinds = [e["kind"] for e in buyer.get("/v1/ledger").body["entries"]]
    assert kinds == ["fill", "settlement"]
    assert seller_id != buyer_id


def test_a_simulated_day_reconciles_with_no_break(local_platform: Any) -> None:
    # WHEN an operator simulates a small day through the API, then reconciles
    out = subprocess.run(
        [sys.executable, "-m", "nexus.cli", "simulate", "--accounts", "6", "--trades", "40", "--clients", "4",
         "--api-url", local_platform.api_url],
        capture_output=True, text=True, env=_cli_env(local_platform), timeout=600, check=False,
    )
    # THEN no order was refused and reconciliation found no break
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 refused" in out.stdout and "BREAK" not in out.stdout
    again = subprocess.run([sys.executable, "-m", "nexus.cli", "reconcile", "--wait", "30"], capture_output=True,
                           text=True, env=_cli_env(local_platform), timeout=300, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.dumps("breaks")  # the summary table names the breaks row
    assert "breaks" in again.stdout
