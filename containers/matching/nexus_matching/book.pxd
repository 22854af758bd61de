# Cython declarations for book.py (pure Python mode): the classes become final extension types
# with typed fields, so the compiled engine reads and writes them as C struct members. Prices,
# quantities and notionals stay Python integers (exact at every size the API admits).
cimport cython


cdef class OcoGroup
cdef class Level

# The order index's shard mask, a C integer: a shard is picked with C arithmetic on the id's hash.
cdef Py_ssize_t _SHARD_MASK


@cython.final
cdef class Order:
    cdef public str order_id
    cdef public str account_id
    cdef public bint is_buy
    cdef public object price
    cdef public object remaining
    cdef public object hidden
    cdef public object peak
    cdef public object filled
    cdef public object notional
    cdef public object quantity
    cdef public str tif
    cdef public int kind
    cdef public object stop_price
    cdef public int stp
    cdef public bint post_only
    cdef public object expire_at
    cdef public object arrival
    cdef public int state
    cdef public OcoGroup group
    cdef public Level level
    cdef public Order prev
    cdef public Order next


@cython.final
cdef class OcoGroup:
    cdef public str group_id
    cdef public list legs

    cpdef bint live(self)
    cpdef Order sibling(self, Order order)


@cython.final
cdef class Level:
    cdef public object key
    cdef public object price
    cdef public object qty
    cdef public Py_ssize_t count
    cdef public Order head
    cdef public Order tail


@cython.final
cdef class BookSide:
    cdef public bint is_bid
    cdef public dict levels
    cdef public list keys

    @cython.locals(prev=Order, nxt=Order, level=Level)
    cpdef Level unlink(self, Order order)


@cython.final
cdef class OrderIndex:
    cdef public list shards

    cpdef Order get(self, str order_id)
    cpdef add(self, Order order)
    cpdef remove(self, str order_id)


@cython.final
cdef class OrderBook:
    cdef public BookSide bids
    cdef public BookSide asks
    cdef public OrderIndex orders

    @cython.locals(side=BookSide, level=Level, tail=Order)
    cpdef Level rest(self, Order order)
    @cython.locals(order_id=str)
    cpdef Level cancel(self, Order order)
