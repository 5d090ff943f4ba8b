"""Reading numbers from bytes inside kernels, written once for every stage's loops.

``@kernel_helper`` functions (numba inlines them): bytes are combined with
multiplications rather than shifts (numba types ``uint8 << int`` as uint64,
which mixed with int64 turns into float64), so every result is a
non-negative int64 in numba and the same int in CPython.
"""

from __future__ import annotations

from .accel_helpers import kernel_helper

M32 = 0xFFFFFFFF  # keeps 32 bits: sequence-number arithmetic modulo 2**32


@kernel_helper
def be16(data, q):
    """The big-endian 16-bit number at ``data[q]``."""
    return (data[q] * 256) | data[q + 1]


@kernel_helper
def be32(data, q):
    """The big-endian 32-bit number at ``data[q]``."""
    return (data[q] * 16777216) | (data[q + 1] * 65536) | (data[q + 2] * 256) | data[q + 3]
