# Cython declarations for seen.py (pure Python mode): both generations of the window of seen ids
# are final extension types, so the engine's fast path reads their shards and sizes directly.
cimport cython

cdef Py_ssize_t _SEEN_MASK


@cython.final
cdef class IdSet:
    cdef public list shards
    cdef public Py_ssize_t size

    cpdef bint contains(self, str order_id) except -1
    @cython.locals(shard=set, before=Py_ssize_t)
    cpdef add(self, str order_id)


@cython.final
cdef class SeenIds:
    cdef public IdSet current
    cdef public IdSet previous
    cdef public Py_ssize_t limit

    cpdef bint contains(self, str order_id) except -1
    @cython.locals(current=IdSet)
    cpdef bint add(self, str order_id) except -1
    cpdef rotate(self)
