"""Addresses stored as two uint64 halves, back to text.

IPv4 lives IPv4-mapped (``::ffff:a.b.c.d``) in the same 128-bit columns as
IPv6 so that one flow-key path serves both; when shown to a person it must
look like IPv4 again.
"""

from __future__ import annotations

import ipaddress

import numpy as np

_MAPPED_PREFIX = 0xFFFF


def ip_to_str(hi: int, lo: int) -> str:
    """``"a.b.c.d"`` for an IPv4-mapped address, the compressed IPv6 text otherwise."""
    hi, lo = int(hi), int(lo)
    if hi == 0 and (lo >> 32) == _MAPPED_PREFIX:
        v = lo & 0xFFFFFFFF
        return f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"
    return str(ipaddress.IPv6Address((hi << 64) | lo))


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
