"""``nexus bench local``: how many orders per second the local platform accepts and fills.

Starts the whole platform in-process (as ``nexus up --demo``), then sends ``pairs`` crossing
pairs (a resting sell and a buy that takes it, spread over the demo symbols) over HTTP from
``clients`` concurrent clients, and reports:

* accepted/s: orders answered ``202`` per second of sending;
* filled/s: orders whose status reached ``filled`` per second, from the first request until the
  last order was seen filled (read back from the orders table, the consumers' projection).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3

from nexus.local.demo import create_account
from nexus.local.runtime import LocalPlatform, Options, free_port, running

SYMBOLS = ("AAPL", "MSFT", "GOOGL", "AMZN")


@dataclass
class LocalBenchResult:
    orders: int
    accepted: int
    filled: int
    send_seconds: float
    fill_seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.send_seconds

    @property
    def filled_per_s(self) -> float:
        return self.filled / self.fill_seconds


def _post(url: str, key: str, body: dict[str, Any]) -> tuple[int, str, float]:
    request = urllib.request.Request(url + "/v1/orders", data=json.dumps(body).encode(), method="POST")  # noqa: S310
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
        payload = json.loads(answer.read())
        return answer.status, payload["order"]["order_id"], time.perf_counter() - started


def _count_filled(platform: LocalPlatform, ids: set[str]) -> int:
    client = boto3.client("dynamodb", endpoint_url=platform.aws_endpoint, region_name=platform.options.region)
    filled = 0
    kwargs: dict[str, Any] = {
        "TableName": platform.table("OrdersTable"),
        "ProjectionExpression": "order_id, #s",
        "ExpressionAttributeNames": {"#s": "status"},
    }
    while True:
        page = client.scan(**kwargs)
        filled += sum(1 for i in page["Items"] if i["order_id"]["S"] in ids and i["status"]["S"] == "filled")
        if "LastEvaluatedKey" not in page:
            return filled
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def run(pairs: int = 200, clients: int = 8, timeout: float = 120.0) -> LocalBenchResult:
    options = Options(
        api_port=free_port(), aws_port=free_port(), stage="bench", demo=True, write_state=False, api_concurrency=clients
    )
    with running(options) as platform:
        seller = create_account(platform.table, "Bench Seller", Decimal("100000000.00"))["api_key"]
        buyer = create_account(platform.table, "Bench Buyer", Decimal("100000000.00"))["api_key"]
        orders: list[tuple[str, dict[str, Any]]] = []
        for i in range(pairs):
            symbol, price = SYMBOLS[i % len(SYMBOLS)], "100.00"  # every sell meets a buy
            orders.append(
                (seller, {"symbol": symbol, "side": "sell", "type": "limit", "quantity": "1", "price": price})
            )
            orders.append((buyer, {"symbol": symbol, "side": "buy", "type": "limit", "quantity": "1", "price": price}))
        # start every API execution environment first, so that the figures are not cold starts
        warm = urllib.request.Request(platform.api_url + "/v1/orders", headers={"Authorization": f"Bearer {seller}"})  # noqa: S310
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda _: urllib.request.urlopen(warm).read(), range(clients * 4)))  # noqa: S310
        ids: set[str] = set()
        latencies: list[float] = []
        lock = threading.Lock()

        def send(item: tuple[str, dict[str, Any]]) -> None:
            status, order_id, seconds = _post(platform.api_url, *item)
            with lock:
                if status == 202:
                    ids.add(order_id)
                latencies.append(seconds)

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(send, orders))
        sent = time.perf_counter()
        filled = 0
        while time.perf_counter() - started < timeout:
            filled = _count_filled(platform, ids)
            if filled >= len(ids):
                break
            time.sleep(0.05)
        done = time.perf_counter()
    latencies.sort()
    return LocalBenchResult(
        orders=len(orders),
        accepted=len(ids),
        filled=filled,
        send_seconds=sent - started,
        fill_seconds=done - started,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    )
