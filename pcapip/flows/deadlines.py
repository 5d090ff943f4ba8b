"""Deadlines of the TCP table's flows: when a closed connection or an attempt is over.

A connection closed in both directions (or reset) is :func:`done`: only late
retransmissions can follow, so it waits out ``linger``; a half-closed one waits
``evict_after``; an attempt that never completed its handshake waits
``attempt_timeout`` (``pcapip.flows.attempts``). :class:`Schedule` keeps those
deadlines in a heap that the compiled ``kernel.expire`` maintains.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def done(fin_mask: int) -> bool:
    """Closed in both directions, or reset: only late retransmissions can follow."""
    return bool(fin_mask & 4) or fin_mask == 3


class Schedule:
    """The TCP table's deadlines: a heap of (deadline, row, serial) that ``kernel.expire``
    keeps, and the rows to (re)schedule (closed, fully closed, become an attempt)."""

    def __init__(self) -> None:
        self.hd = np.zeros(1024, dtype=np.int64)
        self.hslot = np.zeros(1024, dtype=np.int64)
        self.hser = np.zeros(1024, dtype=np.int64)
        self.hn = np.zeros(1, dtype=np.int64)
        self.events: list[np.ndarray] = []

    def expire(
        self, expire_fn: Any, S: np.ndarray, now: int, linger_ns: int, evict_ns: int, attempt_ns: int
    ) -> np.ndarray:
        """The table's rows that are over as of capture time ``now`` (``expire_fn``: the
        loop's ``kernel.expire``, compiled or its twin); the caller ends them."""
        ev = np.concatenate(self.events) if self.events else np.zeros(0, dtype=np.int64)
        self.events = []
        n = int(self.hn[0])
        if n == 0 and ev.size == 0:
            return ev
        need = n + ev.size
        if need > self.hd.shape[0]:
            size = max(need, 2 * self.hd.shape[0])
            for name in ("hd", "hslot", "hser"):
                a = getattr(self, name)
                b = np.zeros(size, dtype=np.int64)
                b[:n] = a[:n]
                setattr(self, name, b)
        out = np.empty(need, dtype=np.int64)
        k = expire_fn(
            ev,
            ev.size,
            S,
            self.hd,
            self.hslot,
            self.hser,
            self.hn,
            now,
            linger_ns,
            evict_ns,
            attempt_ns,
            out,
        )
        return out[:k].copy()
