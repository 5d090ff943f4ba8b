"""Deadlines of the TCP table's flows: when a closed connection or an attempt is over.

A connection closed in both directions (or reset) is :func:`done`: only late
retransmissions can follow, so it waits out ``linger``; a half-closed one waits
``evict_after``; an attempt that never completed its handshake waits
``attempt_timeout`` (``pcapip.flows.attempts``). :class:`Schedule` keeps those
deadlines in order (a queue and a heap) for the compiled ``kernel.expire``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def done(fin_mask: Any) -> Any:
    """Closed in both directions, or reset: only late retransmissions can follow (for one
    flow's fin mask, or a column of them)."""
    return ((fin_mask & 4) != 0) | (fin_mask == 3)


class Schedule:
    """The TCP table's deadlines: (deadline, row, serial) in a queue and a binary heap that
    ``kernel.expire`` keeps in deadline order, and the rows to (re)schedule (closed, fully
    closed, become an attempt)."""

    def __init__(self) -> None:
        self.hp = np.zeros((3, 1024), dtype=np.int64)  # the heap
        self.fq = np.zeros((3, 1024), dtype=np.int64)  # the queue (a ring)
        self.hn = np.zeros(3, dtype=np.int64)  # heap size, queue head, queue length
        self.events: list[np.ndarray] = []

    def forget(self) -> None:
        """Drop every entry, when every flow has ended (their memory goes back before the
        last flows become rows)."""
        self.__init__()  # type: ignore[misc]

    def expire(
        self,
        expire_fn: Any,
        S: np.ndarray,
        now: int,
        linger_ns: int,
        evict_ns: int,
        attempt_ns: int,
    ) -> np.ndarray:
        """The table's rows that are over as of capture time ``now`` (``expire_fn``: the
        loop's ``kernel.expire``, compiled or its twin); the caller ends them."""
        ev = np.concatenate(self.events) if self.events else np.zeros(0, dtype=np.int64)
        self.events = []
        n, head, count = (int(x) for x in self.hn)
        if n == 0 and count == 0 and ev.size == 0:
            return ev
        need = n + count + ev.size  # (an entry taken out early may go back to either)
        if need > self.hp.shape[1]:
            self.hp = _grown(self.hp, 0, n, need, 2.0)
        if need > self.fq.shape[1]:  # (its entries in order from the front)
            self.fq = _grown(self.fq, head, count, need, 1.5)
            self.hn[1] = 0
        out = np.empty(need, dtype=np.int64)
        waits = (linger_ns, evict_ns, attempt_ns)
        k = expire_fn(ev, ev.size, S, (self.hp, self.fq, self.hn), now, waits, out)
        return out[:k].copy()


def _grown(a: np.ndarray, head: int, count: int, need: int, factor: float) -> np.ndarray:
    """``a`` (3, n) with room for ``need`` entries (at least ``factor`` times as many as it
    had), its ``count`` entries from ``head`` on (around the end: a ring) first. The queue
    grows by half (on the 2M flood: 11 copies of queue and heap, not 15 as by an eighth,
    and a lower peak RSS, 369 against 375 MiB), the heap (mostly unwritten) by doubling."""
    b = np.zeros((3, max(need, int(factor * a.shape[1]))), dtype=np.int64)
    first = min(count, a.shape[1] - head)
    b[:, :first] = a[:, head : head + first]
    b[:, first:count] = a[:, : count - first]
    return b
