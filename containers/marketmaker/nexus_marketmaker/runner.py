"""The market maker's lifecycle: ``start`` (state restored, leftover quotes pulled, and the
account's orders the state does not know, placed after the last save of a crashed run,
cancelled: the internal venue's through the orders service's mass cancel, each simulated
venue's in its book), ``step``
(fills folded in, quotes reconciled on every venue), ``stop`` (every quote pulled, state saved).

Each step, per symbol and venue: the fills of its orders since the last step are folded into
the P&L (internal venue: the orders table through the orders service; simulated venues: the
open quantity their book still shows for each order, a drop being a fill at the order's price);
then the wanted quotes (``quoting.make_quotes`` at the mid, skewed by the inventory; on the
internal venue, moved clear of the other orders resting in its book, ``quoting.clear_of_book``)
are compared with the live ones: a live quote that is no longer wanted is cancelled, a wanted one
that is not live is placed, an unchanged one stays (no churn while nothing moves). The
inventory limit is shared by the venues: a venue's quotes are sized from what the limit leaves
once the position and every other live quote of that side (on any venue) are counted as filled,
so even if every quote fills the inventory stays within ``max_inventory``. A halted
symbol, or the account's kill switch, means no quote is wanted: every quote is pulled.

The internal venue is reached through the orders service's own code (validation, pre-trade
risk, reservation, the engine command), as any client's order; the simulated venues through the
routing service's venue store, under each venue's lock. The clock is injected; no sleeping here.
"""

from __future__ import annotations

import copy
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from nexus_marketmaker.config import MarketMakerConfig
from nexus_marketmaker.quoting import ZERO, Pnl, Quote, clear_of_book, make_quotes

log = logging.getLogger("nexus.marketmaker")


class InternalEntry(Protocol):
    def place(self, symbol: str, side: str, price: Decimal, size: Decimal, client_order_id: str) -> str: ...

    def cancel(self, order_id: str) -> None: ...

    def cancel_all(self, symbols: list[str]) -> None:
        """Cancel every open order of the account in ``symbols`` (the orders service's mass cancel)."""
        ...

    def progress(self, order_ids: list[str]) -> dict[str, tuple[Decimal, Decimal, bool]]:
        """Each order's (filled quantity, filled notional, still open), read in one go."""
        ...


class Market(Protocol):
    def instrument(self, symbol: str) -> tuple[Decimal, Decimal, bool]:
        """(tick size, lot size, halted)."""
        ...

    def trading_enabled(self, account_id: str) -> bool: ...

    def last_trade(self, symbol: str) -> Decimal | None: ...

    def levels(self, symbol: str, side: str) -> list[tuple[Decimal, Decimal]]:
        """The internal venue's live levels (price, quantity) of one side, best first (a few)."""
        ...

    def venues(self) -> list[Any]:
        """The venues table (``nexus_routing.venues.Venue`` rows)."""
        ...


class ExternalVenues(Protocol):
    def open(self, configs: Iterable[Any], account: str | None = None) -> Any: ...


class StateStore(Protocol):
    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any]) -> None: ...


@dataclass
class LiveQuote:
    order_id: str
    venue: str
    symbol: str
    side: str
    price: Decimal
    size: Decimal
    filled: Decimal = ZERO
    notional: Decimal = ZERO
    cancelling: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "venue": self.venue, "symbol": self.symbol, "side": self.side,
                "price": str(self.price), "size": str(self.size), "filled": str(self.filled),
                "notional": str(self.notional), "cancelling": self.cancelling}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LiveQuote:
        return cls(d["order_id"], d["venue"], d["symbol"], d["side"], Decimal(d["price"]), Decimal(d["size"]),
                   Decimal(d["filled"]), Decimal(d["notional"]), bool(d["cancelling"]))


class MarketMaker:
    def __init__(self, config: MarketMakerConfig, internal: InternalEntry, external: ExternalVenues, market: Market,
                 store: StateStore, clock: Callable[[], datetime], maker_fee_bps: Decimal = ZERO) -> None:
        self.config = config
        self.internal = internal
        self.external = external
        self.market = market
        self.store = store
        self.clock = clock
        self.maker_fee_bps = maker_fee_bps
        self.pnl: dict[str, Pnl] = {s: Pnl() for s in config.symbols}
        self.quotes: dict[str, LiveQuote] = {}
        self.marks: dict[str, Decimal] = {}
        self._step_mids: dict[str, Decimal | None] = {}  # each symbol's mid, read once per step
        self.seq = 0
        self.steps = 0
        # this process's tag in its order ids: a run that crashed after placing orders its saved
        # state does not count must not have its ids reused (the orders service would answer with
        # the old order as a repeat, a venue would refuse the id)
        self.run = secrets.token_hex(4)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        state = self.store.load()
        if state:
            for symbol, data in state.get("pnl", {}).items():
                self.pnl[symbol] = Pnl.from_dict(data)
            self.quotes = {q["order_id"]: LiveQuote.from_dict(q) for q in state.get("quotes", [])}
            self.seq = int(state.get("seq", 0))
        self.step(pull_only=True)  # a restart starts from no quotes of the previous run
        self._sweep()

    def _sweep(self) -> None:
        """Cancel the account's orders the state does not know: quotes placed after the last save
        of a run that crashed. The known ones were pulled by the step before (their fills folded
        in); on the simulated venues they are left alone, since a quote that vanished unseen reads
        as filled."""
        self.internal.cancel_all(list(self.config.symbols))
        external = [v for v in self.market.venues() if v.name in self.config.venues and not v.internal]
        if not external:
            return
        known = set(self.quotes)
        with self.external.open(external, self.config.account_id) as live:
            for venue in external:
                swept = live[venue.name].cancel_account(self.config.account_id, keep=known)
                if swept:
                    log.warning("cancelled %d unknown quotes of a previous run on %s", len(swept), venue.name)

    def stop(self) -> None:
        self.step(pull_only=True)
        self.save()

    def save(self) -> None:
        pnl = {s: p.to_dict(self.marks.get(s)) for s, p in self.pnl.items()}
        total = sum((Decimal(p["total"]) for p in pnl.values() if "total" in p), ZERO)
        self.store.save({"item": "state", "ts": self.clock().isoformat(), "seq": self.seq, "steps": self.steps,
                         "pnl": pnl, "total_pnl": str(total),
                         "quotes": [q.to_dict() for q in self.quotes.values()]})

    # -- one step ------------------------------------------------------------------------------

    def _next_id(self) -> str:
        self.seq += 1
        return f"mm-{self.config.account_id[-12:]}-{self.run}-{self.seq}"

    def _mid(self, symbol: str) -> Decimal | None:
        """The symbol's last trade (else its reference price), read once per step for every venue."""
        if symbol not in self._step_mids:
            last = self.market.last_trade(symbol)
            mid = last if last is not None else self.config.reference_prices.get(symbol)
            if mid is not None:
                self.marks[symbol] = mid
            self._step_mids[symbol] = mid
        return self._step_mids[symbol]

    def wanted(self, venue: str, symbol: str, allowed: bool) -> list[Quote]:
        if not allowed:
            return []
        tick, lot, halted = self.market.instrument(symbol)
        mid = self._mid(symbol)
        if halted or mid is None:
            return []
        return make_quotes(mid, tick, lot, self.pnl[symbol].position, self.config, venue,
                           room=(self.room(symbol, "buy", venue), self.room(symbol, "sell", venue)))

    def room(self, symbol: str, side: str, venue: str | None = None) -> Decimal:
        """The shares one side may still add to the inventory if every live quote of the symbol on
        that side fills: the limit less the position less the open size of those quotes on every
        venue. With ``venue``, that venue's live quotes are left out (they are the ones being
        reconciled), except those being cancelled, which may still fill. One limit shared by all
        venues: the worst case never passes ``max_inventory``."""
        position = self.pnl[symbol].position
        left = self.config.max_inventory - position if side == "buy" else self.config.max_inventory + position
        for q in self.quotes.values():
            if q.symbol == symbol and q.side == side and (q.venue != venue or q.cancelling):
                left -= q.size - q.filled
        return left

    def _fill(self, quote: LiveQuote, quantity: Decimal, notional: Decimal, fee: Decimal) -> None:
        if quantity <= 0:
            return
        price = notional / quantity
        self.pnl[quote.symbol].apply(f"{quote.order_id}:{quote.filled + quantity}", quote.side, price, quantity, fee)
        quote.filled += quantity
        quote.notional += notional

    def step(self, pull_only: bool = False) -> None:
        self.steps += 1
        self._step_mids.clear()
        venues = {v.name: v for v in self.market.venues() if v.name in self.config.venues}
        allowed = not pull_only and self.market.trading_enabled(self.config.account_id)
        internal = [v for v in venues.values() if v.internal and v.enabled]
        external = [v for v in venues.values() if not v.internal]
        for venue in internal:
            self._step_internal(venue.name, allowed)
        for name in {q.venue for q in self.quotes.values()} - set(venues):  # a venue that left the table
            for q in [q for q in self.quotes.values() if q.venue == name]:
                del self.quotes[q.order_id]
        if external:
            # the venues save nothing if the block fails (a venue's lock lost, Redis away): the
            # quotes and fills of the block are forgotten with them, else the next step would read
            # quotes the venues never kept as filled
            kept = copy.deepcopy((self.quotes, self.pnl))
            try:
                with self.external.open(external, self.config.account_id) as live:
                    for venue in external:
                        self._step_external(venue, live[venue.name], allowed and venue.enabled)
            except Exception:  # the quotes and P&L restored, re-raised
                self.quotes, self.pnl = kept
                raise
        self.save()

    def _step_internal(self, venue: str, allowed: bool) -> None:
        fee_rate = self.maker_fee_bps / Decimal(10_000)
        quotes = [q for q in self.quotes.values() if q.venue == venue]
        progress = self.internal.progress([q.order_id for q in quotes]) if quotes else {}
        for quote in quotes:
            filled, notional, is_open = progress[quote.order_id]
            new_qty, new_notional = filled - quote.filled, notional - quote.notional
            self._fill(quote, new_qty, new_notional, new_notional * fee_rate)
            if not is_open:
                del self.quotes[quote.order_id]
        for symbol in self.config.symbols:
            wanted = self.wanted(venue, symbol, allowed)
            if not self._all_live(venue, symbol, wanted):
                wanted = self._clear_of_book(venue, symbol, wanted)
            self._reconcile(venue, symbol, wanted,
                            cancel=lambda q: self.internal.cancel(q.order_id),
                            place=lambda q, symbol=symbol: self.internal.place(symbol, q.side, q.price, q.size,
                                                                               self._next_id()))

    def _all_live(self, venue: str, symbol: str, wanted: list[Quote]) -> bool:
        """True when every wanted quote is live as it is: nothing to place, so the book need not be
        read (a quote resting in the book cannot be crossed by another resting order)."""
        live = [(q.side, q.price, q.size - q.filled) for q in self._live(venue, symbol)]
        return all((want.side, want.price, want.size) in live for want in wanted)

    def _live(self, venue: str, symbol: str) -> list[LiveQuote]:
        """Its quotes of ``symbol`` on ``venue`` that stand (those being cancelled left out)."""
        return [q for q in self.quotes.values() if q.venue == venue and q.symbol == symbol and not q.cancelling]

    def _clear_of_book(self, venue: str, symbol: str, wanted: list[Quote]) -> list[Quote]:
        """The internal venue's quotes moved clear of the other orders resting in its book
        (``quoting.clear_of_book``): its quotes are post-only, so one that would take is refused
        by the engine, and would be placed and refused again every step while the book stays so
        (a bid resting above the last trade, say). A level is taken as this maker's own while its
        quantity is no more than what this maker's live quotes there leave open."""
        best: dict[str, Decimal | None] = {}
        for side in ("buy", "sell"):
            own: dict[Decimal, Decimal] = {}
            for q in self.quotes.values():
                if q.venue == venue and q.symbol == symbol and q.side == side:
                    own[q.price] = own.get(q.price, ZERO) + q.size - q.filled
            levels = self.market.levels(symbol, side)
            best[side] = next((price for price, quantity in levels if quantity > own.get(price, ZERO)), None)
        tick = self.market.instrument(symbol)[0]
        return clear_of_book(wanted, best["buy"], best["sell"], tick)

    def _step_external(self, config: Any, venue: Any, allowed: bool) -> None:
        from nexus_routing.model import ChildOrder, Side

        open_now = venue.live_orders()
        for quote in [q for q in self.quotes.values() if q.venue == config.name]:
            remaining = open_now.get(quote.order_id, ZERO)
            done = quote.size - quote.filled - remaining
            self._fill(quote, done, done * quote.price, config.fees.maker_cost(done))
            if quote.order_id not in open_now:
                del self.quotes[quote.order_id]

        def place(q: Quote, symbol: str) -> str:
            order_id = self._next_id()
            report = venue.submit(ChildOrder(order_id, symbol, Side(q.side), q.size, q.price, "gtc",
                                             account_id=self.config.account_id))
            return f"{order_id}|{report.status.value}|" + ";".join(
                f"{f.price}:{f.quantity}:{f.fee}" for f in report.fills)

        def cancel(q: LiveQuote) -> None:
            venue.cancel(q.symbol, q.order_id)
            self.quotes.pop(q.order_id, None)

        for symbol in self.config.symbols:
            self._reconcile(config.name, symbol, self.wanted(config.name, symbol, allowed), cancel=cancel,
                            place=lambda q, symbol=symbol: place(q, symbol))

    def _reconcile(self, venue: str, symbol: str, wanted: list[Quote], cancel: Callable[[LiveQuote], None],
                   place: Callable[[Quote], str]) -> None:
        live = self._live(venue, symbol)
        keep: set[str] = set()
        missing: list[Quote] = []
        for want in wanted:
            match = next((q for q in live if q.order_id not in keep and q.side == want.side and q.price == want.price
                          and q.size - q.filled == want.size), None)
            if match is not None:
                keep.add(match.order_id)
            else:
                missing.append(want)
        for quote in live:
            if quote.order_id not in keep:
                quote.cancelling = True
                try:
                    cancel(quote)
                except Exception as exc:  # noqa: BLE001 - per-quote boundary: an order that closed meanwhile; its fills come next step
                    log.info("cancel of %s: %s", quote.order_id, exc)
        for want in missing:
            if want.size > self.room(symbol, want.side):  # a replaced quote's cancel not yet confirmed
                log.info("quote %s %s %s on %s waits for room under the inventory limit", symbol, want.side,
                         want.size, venue)
                continue
            try:
                answer = place(want)
            except Exception as exc:  # noqa: BLE001 - per-quote boundary: refused (risk, halt met first), tried again next step
                log.warning("quote %s %s %s@%s on %s refused: %s", symbol, want.side, want.size, want.price, venue,
                            str(exc)[:200])
                continue
            order_id, _, rest = answer.partition("|")
            quote = LiveQuote(order_id, venue, symbol, want.side, want.price, want.size)
            self.quotes[order_id] = quote
            status, _, fills = rest.partition("|")
            for part in filter(None, fills.split(";")):  # a quote that met a resting order took it
                price, qty, fee = (Decimal(x) for x in part.split(":"))
                self._fill(quote, qty, qty * price, fee)
            if status in ("filled", "cancelled", "rejected"):
                del self.quotes[order_id]
