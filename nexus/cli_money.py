"""Post-trade commands of the ``nexus`` CLI: ``reconcile`` and ``simulate``.

Both talk to the platform ``nexus.platform`` names: the running ``nexus up`` (its state file
``.nexus/runtime.json``), ``AWS_ENDPOINT_URL``, or a stack named by ``--stage``, ``--endpoint-url``
or ``--profile``; never the default AWS. The API URL comes from the state file unless ``--api-url``
is given.

``nexus reconcile`` checks, and prints every break (exit 1 when there is one):

1. every journal entry balances per asset, and the venue's clearing account nets to zero;
2. cash: each account's ``cash`` = ``opening_cash`` + its ledger cash (``cash`` + ``pending_cash``,
   deposits and withdrawals included), and cash is conserved: the accounts' cash changes plus the
   fee income sum to the net deposits (the house ``bank`` account, the contra of every funding
   movement);
3. positions: each position's quantity = its ledger securities (settled + pending) = the account
   item's ``pos#S``;
4. reservations: ``available_cash`` = ``cash`` - what the open reserved buys still reserve, and
   ``buying#S`` / ``sellable#S`` = position +/- the open reserved orders' remaining quantities;
   every id in the account item's ``reservations`` set is held by an open reserved order, OCO
   group or waiting replace (else "leaked reservation <id>": e.g. a reservation write whose
   answer was lost and that nothing gave back). An open order whose id the set lacks is no break
   (orders reserved before the set existed); their count is the figure ``reserved_without_id``;
5. the trade tape: per symbol, the shares on the tape = the shares bought = the shares sold in
   the positions, and two fill entries per trade on the tape.
6. funding: every approved deposit and withdrawal (``FundingRequestsTable``) has its journal
   entry ``funding:<request_id>`` of its amount, and every funding entry an approved request.

``nexus simulate --accounts N --trades M`` creates N funded accounts and trades M crossing pairs
(a resting sell, then a buy at its price) through the HTTP API of the running platform, in
parallel, with a progress bar; then waits for the consumers and reconciles. ``nexus bench day``
(``make day``) does the same on a platform of its own, started and stopped around it: the
10,000-pair day by default.
"""

from __future__ import annotations

import functools
import json
import os
import random
import time
import urllib.error
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

import typer

from nexus import platform

OPEN_STATUSES = ("pending_new", "new", "partially_filled")
SYMBOLS = ("AAPL", "MSFT", "GOOGL", "AMZN")


# -- the platform's tables --------------------------------------------------------------------


@functools.cache
def _patient_dynamodb() -> Any:
    """A DynamoDB resource for whole-table scans: a local platform under load can queue a request
    longer than the SDK's 60 s default read timeout, which must not end a reconciliation."""
    import boto3
    from botocore.config import Config

    config = Config(read_timeout=600, retries={"max_attempts": 10, "mode": "standard"})
    return boto3.resource(
        "dynamodb",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        config=config,
    )


def _scan(table_name: str) -> list[dict[str, Any]]:
    from nexus_common.dynamo import paginate

    return list(paginate(_patient_dynamodb().Table(table_name).scan, ConsistentRead=True))


# -- reconcile -------------------------------------------------------------------------------


@dataclass
class Reconciliation:
    breaks: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def brk(self, text: str) -> None:
        self.breaks.append(text)


def reconcile_tables(table: Any) -> Reconciliation:
    """Check the running platform's tables against each other (``table(logical_id)`` gives names)."""
    from nexus_common.risk import RESERVATIONS, attr, expected_reservations, held_reservation_ids
    from nexus_portfolio.ledger import Entry, balances
    from nexus_portfolio.repo import position_from_item

    result = Reconciliation()
    accounts = {str(a["account_id"]): a for a in _scan(table("AccountsTable"))}
    entries = [Entry.from_item(item) for item in _scan(table("LedgerTable"))]
    positions = [position_from_item(item) for item in _scan(table("PositionsTable"))]
    orders = _scan(table("OrdersTable"))
    tape = [t for t in _scan(table("TradesTable")) if int(t["seq"]) > 0]
    zero = Decimal(0)

    for entry in entries:  # 1. every entry balances; clearing nets to zero
        if entry.imbalance():
            result.brk(f"entry {entry.entry_id} of {entry.account_id} does not balance: {entry.imbalance()}")
    totals = balances(entries)
    for (book, account, asset), amount in sorted(totals.items()):
        if book == "house" and account == "clearing" and amount != 0:
            result.brk(f"clearing {asset} is {amount}, not 0 (a trade with one side posted)")

    ledger_cash: dict[str, Decimal] = defaultdict(Decimal)  # 2. cash
    ledger_shares: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for (book, account, asset), amount in totals.items():
        if book == "house":
            continue
        if account in ("cash", "pending_cash"):
            ledger_cash[book] += amount
        elif account in ("securities", "pending_securities"):
            ledger_shares[(book, asset)] += amount
    moved = zero
    for account_id, item in accounts.items():
        cash = Decimal(str(item.get("cash", 0)))
        opening = Decimal(str(item.get("opening_cash", cash)))
        moved += cash - opening
        if cash - opening != ledger_cash.get(account_id, zero):
            result.brk(
                f"cash of {account_id}: {cash} - opening {opening} != ledger {ledger_cash.get(account_id, zero)}"
            )
    fee_income = totals.get(("house", "fees", "USD"), zero)
    bank = totals.get(("house", FUNDING_CONTRA, "USD"), zero)  # minus the net deposits
    if moved + fee_income + bank != 0:
        result.brk(f"cash not conserved: accounts moved {moved}, fees earned {fee_income}, "
                   f"net deposits {-bank}")  # fmt: skip
    funding = _reconcile_funding(result, table, entries)

    held: dict[tuple[str, str], Decimal] = {}  # 3. positions
    for position in positions:
        key = (position.account_id, position.symbol)
        held[key] = position.quantity
        if position.quantity != ledger_shares.get(key, zero):
            result.brk(f"position {key}: {position.quantity} != ledger {ledger_shares.get(key, zero)}")
    for key, quantity in ledger_shares.items():
        if key not in held and quantity != 0:
            result.brk(f"ledger holds {quantity} {key[1]} for {key[0]} but there is no position")
    for account_id, item in accounts.items():
        for name, value in item.items():
            if name.startswith("pos#"):
                key = (account_id, name[4:])
                if Decimal(str(value)) != held.get(key, zero):
                    result.brk(f"account item {name} of {account_id} is {value}, position {held.get(key, zero)}")

    # 4. reservations: what the open orders hold (an OCO group once, price top-ups included)
    expected = expected_reservations(orders, OPEN_STATUSES)
    reserved_cash, open_qty = expected.cash, expected.quantity
    for account_id, item in accounts.items():
        if "available_cash" in item:
            cash = Decimal(str(item["cash"]))
            available = cash - reserved_cash.get(account_id, zero)
            if Decimal(str(item["available_cash"])) != available:
                result.brk(f"available cash of {account_id} is {item['available_cash']}, expected {available}")
        for symbol in {name.split("#", 1)[1] for name in item if "#" in name}:
            position = held.get((account_id, symbol), zero)
            for kind, side, sign in (("buying", "buy", 1), ("sellable", "sell", -1)):
                if attr(kind, symbol) in item:
                    want = position + sign * open_qty.get((account_id, symbol, side), zero)
                    if Decimal(str(item[attr(kind, symbol)])) != want:
                        result.brk(f"{kind}#{symbol} of {account_id} is {item[attr(kind, symbol)]}, expected {want}")
    held_ids = held_reservation_ids(orders, OPEN_STATUSES)  # ... and the set of reservation ids held
    without_id = 0
    for account_id, item in accounts.items():
        in_set = {str(rid) for rid in item.get(RESERVATIONS) or ()}
        expected_ids = held_ids.get(account_id, set())
        for rid in sorted(in_set - expected_ids):
            result.brk(f"leaked reservation {rid} of {account_id}: held on the account item, no open order holds it")
        without_id += len(expected_ids - in_set)

    tape_shares: dict[str, Decimal] = defaultdict(Decimal)  # 5. the tape
    for trade in tape:
        tape_shares[str(trade["symbol"])] += Decimal(str(trade["quantity"]))
    bought: dict[str, Decimal] = defaultdict(Decimal)
    sold: dict[str, Decimal] = defaultdict(Decimal)
    for position in positions:
        bought[position.symbol] += position.bought
        sold[position.symbol] += position.sold
    for symbol in sorted(set(tape_shares) | set(bought) | set(sold)):
        if not tape_shares.get(symbol, zero) == bought.get(symbol, zero) == sold.get(symbol, zero):
            result.brk(f"{symbol}: tape {tape_shares.get(symbol, zero)} shares, bought {bought.get(symbol, zero)}, "
                       f"sold {sold.get(symbol, zero)}")
    fills = sum(1 for e in entries if e.kind == "fill")
    if fills != 2 * len(tape):
        result.brk(f"{fills} fill entries for {len(tape)} trades on the tape (expected {2 * len(tape)})")

    result.figures = {
        "accounts": len(accounts),
        "trades": len(tape),
        "journal_entries": len(entries),
        "positions": len(positions),
        "open_reserved_orders": sum(1 for o in orders if o.get("status") in OPEN_STATUSES and o.get("reserved")),
        "reserved_without_id": without_id,
        "cash_moved": str(moved),
        "fees_earned": str(fee_income),
        **funding,
    }
    return result


FUNDING_CONTRA = "bank"  # the house's ledger account of cash outside the venue (nexus_portfolio.funding)


def _reconcile_funding(result: Reconciliation, table: Any, entries: list[Any]) -> dict[str, Any]:
    """6. funding: every approved deposit or withdrawal has its journal entry ``funding:<id>`` of
    its amount on its account, and every funding entry an approved request (a platform started
    before the funding table existed has none)."""
    from botocore.exceptions import ClientError

    try:
        requests = _scan(table("FundingRequestsTable"))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        requests = []
    zero = Decimal(0)
    posted = {e.entry_id: e for e in entries if e.entry_id.startswith("funding:")}
    totals = {"deposit": zero, "withdrawal": zero}
    approved: set[str] = set()
    for request in requests:
        if request.get("status") != "approved":
            continue
        entry_id = f"funding:{request['request_id']}"
        approved.add(entry_id)
        amount = Decimal(str(request["amount"]))
        kind = str(request["kind"])
        totals[kind] = totals.get(kind, zero) + amount
        entry = posted.get(entry_id)
        want = amount if kind == "deposit" else -amount
        if entry is None:
            result.brk(f"{kind} {request['request_id']} of {request['account_id']} is approved but not in the ledger")
            continue
        got = sum((leg.amount for leg in entry.legs
                   if leg.book == request["account_id"] and leg.account == "cash"), zero)  # fmt: skip
        if entry.account_id != request["account_id"] or got != want:
            result.brk(f"{kind} {request['request_id']}: ledger moves {got} for {entry.account_id}, "
                       f"expected {want} for {request['account_id']}")  # fmt: skip
    for entry_id in sorted(set(posted) - approved):
        result.brk(f"ledger entry {entry_id} of {posted[entry_id].account_id} has no approved funding request")
    return {
        "deposits": str(totals["deposit"]),
        "withdrawals": str(totals["withdrawal"]),
        "funding_pending": sum(1 for r in requests if r.get("status") == "pending"),
    }


def reconcile_until_clean(table: Any, wait: float) -> Reconciliation:
    """Reconcile; while there are breaks, try again for up to ``wait`` seconds (the consumers
    may still be applying the last events). A reconciliation scans every table, which competes
    with the consumers for the emulated AWS: the pause between tries grows from 1 s to 15 s, and
    is at least twice what the last reconciliation took, so reconciling takes at most a third of
    the time while the consumers catch up (a scan of a large day takes tens of seconds)."""
    deadline = time.monotonic() + wait
    started = time.monotonic()
    result = reconcile_tables(table)
    took = time.monotonic() - started
    pause = 1.0
    while result.breaks and time.monotonic() < deadline:
        time.sleep(min(max(pause, 2 * took), max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 15.0)
        started = time.monotonic()
        result = reconcile_tables(table)
        took = time.monotonic() - started
    return result


def _print_reconciliation(result: Reconciliation) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title="reconciliation", show_header=False)
    for key, value in result.figures.items():
        summary.add_row(key, str(value))
    summary.add_row("breaks", str(len(result.breaks)))
    console.print(summary)
    for line in result.breaks[:200]:
        console.print(f"[red]BREAK[/red] {line}")


# -- simulate --------------------------------------------------------------------------------


def _http(api_url: str, key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api_url + path, data=data, method=method)  # noqa: S310 - loopback
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return int(answer.status), json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"null")


@dataclass
class SimulationResult:
    accounts: int
    trades: int
    orders_sent: int
    refused: int
    seconds: float
    settle_seconds: float
    reconciliation: Reconciliation


def simulate_day(
    table: Any, api_url: str, accounts: int, trades: int, clients: int, seed: int, progress: Any = None
) -> SimulationResult:
    """Create ``accounts`` funded accounts, then ``trades`` crossing pairs through the API."""
    from nexus.local.demo import create_account

    rng = random.Random(seed)
    keys = [create_account(table, f"Sim {i}", Decimal("1000000.00"))["api_key"] for i in range(accounts)]
    mids = {symbol: Decimal(rng.randint(5000, 30000)) / 100 for symbol in SYMBOLS}
    for symbol in SYMBOLS:  # trade around the last price, inside the price collar
        status, body = _http(api_url, keys[0], "GET", f"/v1/markets/{symbol}/trades?limit=1")
        if status == 200 and body.get("trades"):
            mids[symbol] = Decimal(str(body["trades"][0]["price"]))
    pairs = []
    for i in range(trades):
        symbol = rng.choice(SYMBOLS)
        seller, buyer = rng.sample(range(accounts), 2) if accounts > 1 else (0, 0)
        price = (mids[symbol] * (1 + Decimal(rng.randint(-150, 150)) / 10000)).quantize(Decimal("0.01"))
        quantity = rng.randint(1, 50)
        pairs.append((i, symbol, keys[seller], keys[buyer], price, quantity))
    refused = 0
    started = time.monotonic()

    def trade(pair: tuple[int, str, str, str, Decimal, int]) -> int:
        i, symbol, seller, buyer, price, quantity = pair
        # self-trade prevention: with pairs in flight at once an account may meet its own resting
        # order, a wash trade that surveillance halts the account for; a benign day has none
        base = {"symbol": symbol, "type": "limit", "price": str(price), "quantity": str(quantity),
                "stp": "cancel_newest"}
        bad = 0
        for key, side in ((seller, "sell"), (buyer, "buy")):
            body = {**base, "side": side, "client_order_id": f"sim{seed}-{i}-{side}"}
            status, _ = _http(api_url, key, "POST", "/v1/orders", body)
            bad += status not in (200, 202)
        if progress is not None:
            progress()
        return bad

    with ThreadPoolExecutor(max_workers=clients) as pool:
        refused = sum(pool.map(trade, pairs))
    sent = time.monotonic() - started
    result = reconcile_until_clean(table, wait=max(120.0, trades / 2))  # until the consumers drain
    return SimulationResult(accounts, trades, 2 * trades, refused, sent, time.monotonic() - started - sent, result)


# -- registration ----------------------------------------------------------------------------


# The options of the simulated day, shared by `nexus simulate` and `nexus bench day`.
AccountsOption = Annotated[int, typer.Option(min=2, help="Accounts to create and fund.")]
TradesOption = Annotated[int, typer.Option(min=1, help="Crossing pairs to send (each at least one trade).")]
ClientsOption = Annotated[int, typer.Option(min=1, max=64, help="Concurrent HTTP clients.")]
SeedOption = Annotated[int, typer.Option(help="Random seed of the day.")]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""

    @app.command("reconcile")
    @platform.command
    def reconcile(
        wait: Annotated[float, typer.Option(help="Seconds to retry while breaks remain (consumers catching up).")] = 0,
    ) -> None:
        """Ledger vs positions vs reservations vs the trade tape; prints every break, exit 1 on one."""
        result = reconcile_until_clean(platform.tables(), wait)
        _print_reconciliation(result)
        if result.breaks:
            raise typer.Exit(1)

    @app.command("simulate")
    @platform.command
    def simulate(
        accounts: AccountsOption = 50,
        trades: TradesOption = 1000,
        clients: ClientsOption = 8,
        seed: SeedOption = 1,
        api_url: Annotated[str, typer.Option(help="API of the running platform (default: its state file).")] = "",
    ) -> None:
        """A random trading day through the running local platform over HTTP, then reconcile."""
        url = api_url or platform.current().api_url
        if not url:
            typer.echo("nexus: no API to trade through: pass --api-url", err=True)
            raise typer.Exit(2)
        _simulate_and_report(platform.tables(), url, accounts, trades, clients, seed)

    @bench_app.command("day")
    def bench_day(
        accounts: AccountsOption = 50,
        trades: TradesOption = 10_000,
        clients: ClientsOption = 8,
        seed: SeedOption = 1,
    ) -> None:
        """The simulated day on a platform of its own: `nexus up --demo` in a child process (free
        ports, its own state), `simulate`, reconcile, stop. Exit 1 on a break."""
        from nexus.bench_local import LocalPlatform
        from nexus.local import runtime

        day = LocalPlatform(stage="day")
        try:
            target = platform.use(platform.local_target(runtime.read_state(day.state)))
            _simulate_and_report(platform.tables(target), day.url, accounts, trades, clients, seed)
        finally:
            day.stop()


def _simulate_and_report(table: Any, url: str, accounts: int, trades: int, clients: int, seed: int) -> None:
    """Run the day with a progress bar, print its figures and the reconciliation; exit 1 on a break."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("trading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("pairs", total=trades)
        result = simulate_day(table, url, accounts, trades, clients, seed, progress=lambda: bar.advance(task))
    typer.echo(
        f"simulated: {result.accounts} accounts, {result.trades} crossing pairs ({result.orders_sent} orders, "
        f"{result.refused} refused) in {result.seconds:.1f} s "
        f"({result.orders_sent / result.seconds:.0f} orders/s); "
        f"consumers settled {result.settle_seconds:.1f} s later"
    )
    _print_reconciliation(result.reconciliation)
    if result.reconciliation.breaks:
        raise typer.Exit(1)
