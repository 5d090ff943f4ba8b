"""Addresses stored as two uint64 halves, back to text.

IPv4 lives IPv4-mapped (``::ffff:a.b.c.d``) in the same 128-bit columns as
IPv6 so that one flow-key path serves both; when shown to a person it must
look like IPv4 again. Every address the product prints goes through
``ip_to_str``: the flow rows, and the packets ``extract`` and ``show`` match
to those rows by that text.
"""

from __future__ import annotations

# (the C module: inet_ntop without socket.py's import cost)
from _socket import AF_INET, AF_INET6, inet_ntop

import numpy as np

_MAPPED_PREFIX = 0xFFFF
_M64 = (1 << 64) - 1


def ip_to_str(hi: int, lo: int) -> str:
    """``"a.b.c.d"`` for an IPv4-mapped address, else the IPv6 text inet_ntop and
    Wireshark print (RFC 5952, and ``::a.b.c.d`` for an IPv4-compatible address, where
    Python's ipaddress prints ``::a0b:c0d``). The halves may be int64 bit patterns."""
    hi, lo = int(hi) & _M64, int(lo) & _M64
    if hi == 0 and (lo >> 32) == _MAPPED_PREFIX:
        return inet_ntop(AF_INET, (lo & 0xFFFFFFFF).to_bytes(4, "big"))
    return inet_ntop(AF_INET6, ((hi << 64) | lo).to_bytes(16, "big"))


def ips_to_str(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Vectorised ``ip_to_str``: formats each distinct address once.

    Captures hold few distinct addresses and many packets, so the work is
    proportional to the distinct ones plus one gather.
    """
    hi = np.asarray(hi, dtype=np.uint64)
    lo = np.asarray(lo, dtype=np.uint64)
    if hi.shape != lo.shape:
        raise ValueError("hi and lo must have the same shape")
    if hi.size == 0:
        return np.empty(hi.shape, dtype=object)
    pairs = np.empty(hi.size, dtype=[("hi", np.uint64), ("lo", np.uint64)])
    pairs["hi"] = hi.ravel()
    pairs["lo"] = lo.ravel()
    uniq, inverse = np.unique(pairs, return_inverse=True)
    text = np.array([ip_to_str(h, lo_) for h, lo_ in uniq.tolist()], dtype=object)
    return text[inverse.ravel()].reshape(hi.shape)
