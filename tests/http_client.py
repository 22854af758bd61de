"""A tiny HTTP client for tests against the local platform (stdlib only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class Api:
    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self.base_url = base_url
        self.api_key = api_key

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        api_key: str | None = None,
    ) -> Answer:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base_url + path, data=data, method=method)  # noqa: S310
        key = api_key if api_key is not None else self.api_key
        if key:
            request.add_header("Authorization", f"Bearer {key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
                status, payload, got = answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as error:
            status, payload, got = error.code, error.read(), dict(error.headers)
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode(errors="replace")
        return Answer(status, parsed, got)

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.call("POST", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Answer:
        return self.call("DELETE", path, **kwargs)


# Before a symbol's first trade on the shared platform of the system tests: the prices they trade
# at, so that the price collar (10 % around the last trade) lets every test through, whatever runs
# first. A test that trades a symbol before the others must trade near its price here.
FIRST_PRICES = {"AAPL": Decimal("150.00"), "MSFT": Decimal("300.00"), "GOOGL": Decimal("150.00"),
                "AMZN": Decimal("120.00")}  # fmt: skip


def resting_buy_price(api: Api, symbol: str, cents: int = 0) -> str:
    """A buy price that rests: 5 % under the symbol's last trade, or under its ``FIRST_PRICES``
    entry before any trade (inside the pre-trade collar whatever other tests on the shared
    platform traded before), plus ``cents``."""
    trades = (api.get(f"/v1/markets/{symbol}/trades?limit=1").body or {}).get("trades") or []
    last = Decimal(trades[0]["price"]) if trades else FIRST_PRICES.get(symbol, Decimal("10.00"))
    base = (last * Decimal("0.95")).quantize(Decimal("0.01"), ROUND_DOWN)
    return str(base + Decimal(cents) / 100)
