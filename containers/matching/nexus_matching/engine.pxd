# Cython declarations for engine.py (pure Python mode): the per-symbol state and the engine are
# final extension types, and the matching core (everything ``submit`` and ``cancel_order`` reach)
# are C-level methods with typed locals. Prices, quantities, notionals and instants stay Python
# integers, as in book.pxd.
cimport cython

from nexus_matching.book cimport BookSide, Level, OcoGroup, Order, OrderBook, OrderIndex

# The book's small integer constants, held as C ints here (imported from book.py at load).
cdef int LIMIT, MARKET, STOP, STOP_LIMIT
cdef int NEW, RESTING, PENDING, DONE
cdef int STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH, STP_DECREMENT
# Record kinds of the matching core.
cdef int _TRADE, _CANCEL, _ACCEPT, _EXPIRE, _REPLACE, _TRIGGER


@cython.locals(order=Order)
cdef Order _new_order(str order_id, str account_id, bint is_buy, object price, object lots, str tif, int kind,
                      int stp, object arrival)


cdef Py_ssize_t _SEEN_MASK, _ORDER_MASK


@cython.final
cdef class IdSet:
    cdef public list shards
    cdef public Py_ssize_t size

    cpdef bint contains(self, str order_id) except -1
    @cython.locals(shard=set, before=Py_ssize_t)
    cpdef add(self, str order_id)


@cython.final
cdef class _Market:
    cdef public str symbol
    cdef public object instrument
    cdef public OrderBook book
    cdef public object seq
    cdef public object tick_coef
    cdef public object tick_places
    cdef public object lot_coef
    cdef public object lot_places
    cdef public object notional_coef
    cdef public object notional_places
    cdef public object qty_str
    cdef public dict price_cache
    cdef public dict qty_cache
    cdef public dict price_str_cache
    cdef public object band_bps
    cdef public object collar_bps
    cdef public object ref
    cdef public object close
    cdef public object zone
    cdef public object last
    cdef public object arrivals
    cdef public dict pending
    cdef public dict buy_stops
    cdef public list buy_stop_keys
    cdef public dict sell_stops
    cdef public list sell_stop_keys
    cdef public dict groups
    cdef public list expiries
    cdef public list out
    cdef public dict touched

    cpdef park(self, Order order)
    cpdef unpark(self, Order order)
    cpdef bint triggerable(self, Order order)
    @cython.locals(order=Order, keys=list, found=list)
    cpdef list collect_triggered(self)


@cython.final
cdef class MatchingEngine:
    cdef public object config
    cdef public dict _markets
    cdef public dict _other_seq
    cdef public IdSet _seen
    cdef public IdSet _seen_old
    cdef public Py_ssize_t _window
    cdef public object _epoch
    cdef public object _last_ts
    cdef public object _last_now
    cdef public object dropped_commands
    cdef public set _halted

    cdef bint _taken(self, _Market m, str order_id) except -1
    @cython.locals(seen=IdSet)
    cdef _remember(self, str order_id)
    cdef _rotate(self)
    cdef _accept(self, _Market m, Order order)
    cdef _run_new(self, _Market m, Order order)
    @cython.locals(order=Order, triggered=list)
    cdef _cascade(self, _Market m)
    cdef _trigger(self, _Market m, Order o)
    @cython.locals(book=OrderBook, opposite=list, market_order=bint, stopped=bint, levels=dict, level=Level,
                   tail=Order, kind=int, is_buy=bint, order_id=str)
    cdef _execute(self, _Market m, Order o)
    cdef _finish(self, _Market m, Order o, str reason)
    @cython.locals(book=OrderBook, opposite=BookSide, keys=list, levels=dict, shards=list, out=list, touched=dict, order_id=str,
                   tstp=int, stopped=bint, level=Level, maker=Order, nxt=Order, tail=Order)
    cdef bint _match(self, _Market m, Order taker, object limit_key) except -1
    cdef bint _self_trade(self, _Market m, Order taker, Order maker) except -1
    cdef _reduce(self, _Market m, Order o, object cut, str reason)
    cdef _oco_fill(self, _Market m, Order leg, object lots)
    @cython.locals(level=Level, other=Order)
    cdef _cancel_live(self, _Market m, Order o, str reason, bint sibling=*)
    cdef tuple _replaced_record(self, Order o, str reason, bint kept)
    @cython.locals(order=Order, level=Level)
    cdef _expire(self, _Market m, object now)
    @cython.locals(m=_Market, order=Order, seen=IdSet, h=Py_hash_t, shard=set)
    cpdef submit(self, str symbol, str order_id, str account_id, bint is_buy, object price, object lots,
                 str tif=*, int stp=*)
    @cython.locals(m=_Market, order=Order)
    cpdef bint cancel_order(self, str symbol, str order_id, str account_id) except -1
