# Cython declarations for market.py (pure Python mode): a symbol's market is a final extension
# type, so the engine reads and writes its fields as C struct members; the stop-parking methods
# are C-level. Prices, quantities and instants stay Python integers, as in book.pxd.
cimport cython

from nexus_matching.book cimport Order, OrderBook

cdef int PENDING, NEW


@cython.final
cdef class Market:
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

