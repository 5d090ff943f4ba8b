"""Reading numbers from bytes inside kernels, written once for every stage's loops.

``@kernel_helper`` functions (numba inlines them): bytes are combined with
multiplications rather than shifts (numba types ``uint8 << int`` as uint64,
which mixed with int64 turns into float64), so every result is a
non-negative int64 in numba and the same int in CPython.
"""

from __future__ import annotations

from .accel_helpers import kernel_helper

M32 = 0xFFFFFFFF  # keeps 32 bits: sequence-number arithmetic modulo 2**32
INT64_MAX = 9223372036854775807  # where nanosecond times saturate


@kernel_helper
def be16(data, q):
    """The big-endian 16-bit number at ``data[q]``."""
    return (data[q] * 256) | data[q + 1]


@kernel_helper
def be32(data, q):
    """The big-endian 32-bit number at ``data[q]``."""
    return (data[q] * 16777216) | (data[q + 1] * 65536) | (data[q + 2] * 256) | data[q + 3]


@kernel_helper
def le32(data, q):
    """The little-endian 32-bit number at ``data[q]``."""
    return (data[q + 3] * 16777216) | (data[q + 2] * 65536) | (data[q + 1] * 256) | data[q]


@kernel_helper
def u16(data, q, big):
    """The 16-bit number at ``data[q]``, big-endian if ``big`` (a capture file's byte order)."""
    return be16(data, q) if big else (data[q + 1] * 256) | data[q]


@kernel_helper
def u32(data, q, big):
    """The 32-bit number at ``data[q]``, big-endian if ``big`` (a capture file's byte order)."""
    return be32(data, q) if big else le32(data, q)
