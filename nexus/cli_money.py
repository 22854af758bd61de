"""Post-trade commands of the ``nexus`` CLI: ``reconcile`` and ``simulate``.

Both talk to the platform ``nexus.platform`` names: the running ``nexus up`` (its state file
``.nexus/runtime.json``), ``AWS_ENDPOINT_URL``, or a stack named by ``--stage``, ``--endpoint-url``
or ``--profile``; never the default AWS. The API URL comes from the state file unless ``--api-url``
is given.

``nexus reconcile`` scans the tables, checks them (``nexus.reconcile``: one pure function per
invariant) and prints every break (exit 1 when there is one):

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
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

import typer

from nexus import platform
from nexus.reconcile import Reconciliation, Scanned, reconcile

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


def scan_tables(table: Any) -> Scanned:
    """One scan of the tables a reconciliation reads (``table(logical_id)`` gives names); a
    platform started before the funding table existed has no funding requests."""
    from botocore.exceptions import ClientError
    from nexus_portfolio.ledger import Entry
    from nexus_portfolio.repo import position_from_item

    accounts = {str(a["account_id"]): a for a in _scan(table("AccountsTable"))}
    entries = [Entry.from_item(item) for item in _scan(table("LedgerTable"))]
    positions = [position_from_item(item) for item in _scan(table("PositionsTable"))]
    orders = _scan(table("OrdersTable"))
    trades = _scan(table("TradesTable"))
    try:
        requests = _scan(table("FundingRequestsTable"))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        requests = []
    return Scanned(accounts, entries, positions, orders, trades, requests)


def reconcile_tables(table: Any) -> Reconciliation:
    """Check the running platform's tables against each other (``nexus.reconcile``)."""
    return reconcile(scan_tables(table))


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
        _report_pass(result, took)
        time.sleep(min(max(pause, 2 * took), max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 15.0)
        started = time.monotonic()
        result = reconcile_tables(table)
        took = time.monotonic() - started
    return result


def _report_pass(result: Reconciliation, took: float, shown: int = 3) -> None:
    """One line on standard error for a reconciliation that found breaks and will be tried again:
    how many, and the first few (a break that stays pass after pass is a fault, not a lag)."""
    first = "; ".join(result.breaks[:shown])
    print(f"reconciliation: {len(result.breaks)} breaks after {took:.1f} s ({first}), trying again",
          file=sys.stderr)  # fmt: skip


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
    idle_seconds: float | None = None  # from the last order to the consumers going idle (when known)


def simulate_day(
    table: Any, api_url: str, accounts: int, trades: int, clients: int, seed: int, progress: Any = None,
    drained: Callable[[], object] | None = None,
) -> SimulationResult:
    """Create ``accounts`` funded accounts, then ``trades`` crossing pairs through the API, then
    reconcile until clean. ``drained`` (a platform that can tell) returns once its consumers are
    idle: reconciling scans every table, competing with the consumers for the emulated AWS, so
    it starts only then; without it, reconciliation is tried from the last order on."""
    from nexus.local.demo import create_account

    rng = random.Random(seed)
    keys = [create_account(table, f"Sim {i}", Decimal("1000000.00"))["api_key"] for i in range(accounts)]
    mids = {symbol: Decimal(rng.randint(5000, 30000)) / 100 for symbol in SYMBOLS}
    for symbol in SYMBOLS:  # trade around the market's price, inside the price collar
        mids[symbol] = _market_price(api_url, keys[0], symbol) or mids[symbol]
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
    idle = None
    if drained is not None:
        drained()
        idle = time.monotonic() - started - sent
    result = reconcile_until_clean(table, wait=max(120.0, trades / 2))  # until the consumers drain
    settled = time.monotonic() - started - sent
    return SimulationResult(accounts, trades, 2 * trades, refused, sent, settled, result, idle)


MARKET_WAIT_S = 10.0  # how long a symbol with neither a trade nor a two-sided quote is waited for


def _market_price(
    api_url: str, key: str, symbol: str, wait: float = MARKET_WAIT_S, clock: Callable[[], float] = time.monotonic
) -> Decimal | None:
    """The symbol's last trade price, else the mid of its best bid and offer (a market maker that
    quotes, e.g. ``make run``'s), from ``GET /v1/markets/{symbol}/ticker``. A symbol with neither
    is asked again for up to ``wait`` seconds (a market maker may not have quoted yet); None if it
    still has neither (nobody else trades it: any price inside the day's own collar will do).

    Trading elsewhere than the market refuses nearly every order: a pair priced away from the
    quotes trades with them, the last trade moves there, and the pairs that follow fall outside
    the price collar around it."""
    deadline = clock() + wait
    while True:
        status, body = _http(api_url, key, "GET", f"/v1/markets/{symbol}/ticker")
        if status == 200:
            if body.get("last"):
                return Decimal(str(body["last"]["price"]))
            bid, ask = body.get("bid"), body.get("ask")
            if bid and ask:
                return ((Decimal(str(bid["price"])) + Decimal(str(ask["price"]))) / 2).quantize(Decimal("0.01"))
        if clock() >= deadline:
            return None
        time.sleep(0.5)


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
        from nexus.bench_local import LocalPlatform, day_target_line, settled_counters
        from nexus.local import runtime

        started = time.monotonic()
        day = LocalPlatform(stage="day")
        try:
            target = platform.use(platform.local_target(runtime.read_state(day.state)))

            def drained() -> object:  # no request but polling and the market maker's for 3 s
                return settled_counters(day.state, timeout=max(120.0, trades / 2))

            _simulate_and_report(platform.tables(target), day.url, accounts, trades, clients, seed, drained)
        finally:
            day.stop()
        typer.echo(day_target_line(time.monotonic() - started, trades))  # a day with a break exits 1 above


def _progress_lines(total: int, clock: Callable[[], float] = time.monotonic) -> Callable[[], None]:
    """A progress callback (called from the clients' threads) that prints one line each time
    another tenth of ``total`` pairs is done."""
    lock, done, started = threading.Lock(), [0], clock()
    step = max(1, total // 10)

    def advance() -> None:
        with lock:
            done[0] += 1
            count = done[0]
        if count % step == 0 or count == total:
            typer.echo(f"trading: {count}/{total} pairs, {clock() - started:.0f} s")

    return advance


def _simulate_and_report(
    table: Any, url: str, accounts: int, trades: int, clients: int, seed: int,
    drained: Callable[[], object] | None = None,
) -> None:
    """Run the day with a progress bar, print its figures and the reconciliation; exit 1 on a break."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if sys.stdout.isatty():
        with Progress(TextColumn("trading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
            task = bar.add_task("pairs", total=trades)
            result = simulate_day(table, url, accounts, trades, clients, seed, progress=lambda: bar.advance(task),
                                  drained=drained)  # fmt: skip
    else:  # a log or CI: a line every tenth of the day instead of a bar nobody sees
        result = simulate_day(table, url, accounts, trades, clients, seed, progress=_progress_lines(trades),
                              drained=drained)  # fmt: skip
    typer.echo(
        f"simulated: {result.accounts} accounts, {result.trades} crossing pairs ({result.orders_sent} orders, "
        f"{result.refused} refused) in {result.seconds:.1f} s "
        f"({result.orders_sent / result.seconds:.0f} orders/s); "
        f"consumers settled {result.settle_seconds:.1f} s later"
        + (f" (idle after {result.idle_seconds:.1f} s)" if result.idle_seconds is not None else "")
    )
    _print_reconciliation(result.reconciliation)
    if result.reconciliation.breaks:
        raise typer.Exit(1)
