# Cython declarations for engine.py (pure Python mode): the engine is a final extension type (as
# are the per-symbol state, market.pxd, and the window of seen ids, seen.pxd), and the matching
# core (everything ``submit`` and ``cancel_order`` reach) are C-level methods with typed locals.
# Prices, quantities, notionals and instants stay Python integers, as in book.pxd.
cimport cython

from nexus_matching.book cimport BookSide, Level, OcoGroup, Order, OrderBook, OrderIndex
from nexus_matching.market cimport Market
from nexus_matching.seen cimport IdSet, SeenIds

# The book's small integer constants, held as C ints here (imported from book.py at load).
cdef int LIMIT, MARKET, STOP, STOP_LIMIT
cdef int NEW, RESTING, PENDING, DONE
cdef int STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH, STP_DECREMENT
# Record kinds of the matching core (imported from render.py at load).
cdef int TRADE, CANCEL, ACCEPT, EXPIRE, REPLACE, TRIGGER


@cython.locals(order=Order)
cdef Order _new_order(str order_id, str account_id, bint is_buy, object price, object lots, str tif, int kind,
                      int stp, object arrival)


cdef Py_ssize_t _SEEN_MASK, _ORDER_MASK


@cython.final
cdef class MatchingEngine:
    cdef public object config
    cdef public dict _markets
    cdef public dict _other_seq
    cdef public SeenIds _seen
    cdef public object _epoch
    cdef public object _last_ts
    cdef public object _last_now
    cdef public object dropped_commands
    cdef public set _halted
    cdef public dict _working

    cdef bint _taken(self, Market m, str order_id) except -1
    cdef _remember(self, str order_id)
    cdef _rotate(self)
    cdef _drop_finished_groups(self)
    cdef _accept(self, Market m, Order order)
    cdef _run_new(self, Market m, Order order)
    @cython.locals(order=Order, triggered=list)
    cdef _cascade(self, Market m)
    cdef _trigger(self, Market m, Order o)
    @cython.locals(book=OrderBook, opposite=list, market_order=bint, stopped=bint, levels=dict, level=Level,
                   tail=Order, kind=int, is_buy=bint, order_id=str)
    cdef _execute(self, Market m, Order o)
    cdef _finish(self, Market m, Order o, str reason)
    @cython.locals(book=OrderBook, opposite=BookSide, keys=list, levels=dict, shards=list, out=list, touched=dict, order_id=str,
                   tstp=int, stopped=bint, level=Level, maker=Order, nxt=Order, tail=Order)
    cdef bint _match(self, Market m, Order taker, object limit_key) except -1
    cdef bint _self_trade(self, Market m, Order taker, Order maker) except -1
    cdef _reduce(self, Market m, Order o, object cut, str reason)
    cdef _oco_fill(self, Market m, Order leg, object lots)
    @cython.locals(level=Level, other=Order)
    cdef _cancel_live(self, Market m, Order o, str reason, bint sibling=*)
    cdef tuple _replaced_record(self, Order o, str reason, bint kept)
    @cython.locals(order=Order, level=Level)
    cdef _expire(self, Market m, object now)
    @cython.locals(m=Market, order=Order, seen=IdSet, h=Py_hash_t, shard=set)
    cpdef submit(self, str symbol, str order_id, str account_id, bint is_buy, object price, object lots,
                 str tif=*, int stp=*)
    @cython.locals(m=Market, order=Order)
    cpdef bint cancel_order(self, str symbol, str order_id, str account_id) except -1
