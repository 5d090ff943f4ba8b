"""How far the ended rows can go out in first-packet order: the smallest first packet an
unfinished flow can still have.

The table numbers flows in order of their first packet (``pcapip.flows.reorder``). Rows
that leave the tracker already in that order are the table as they are: no reordered copy
of millions of rows. A flush sorts the flows that end together; they stay in order with
the flushes before and after only if no flow still open (or ending later) began before
them. So the TCP table counts, per *epoch* of 1,024 flow serial numbers, the flows created
and not yet handed out and the smallest first packet among them; a flush hands out the
rows below that bound and keeps the rest waiting (a few thousand rows at most: a SYN
flood's refused attempts end seconds before the unanswered ones that began earlier).
"""

from __future__ import annotations

import numpy as np

from pcapip.flows import layout as L

SHIFT = 10  # serial numbers per epoch: 2**SHIFT
NONE = np.iinfo(np.int64).max  # no bound
ORDER_SHIFT = 40  # a first packet as one int64: capture << ORDER_SHIFT | frame (below 2**40)


def first_packet(S: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(capture, first frame) of table rows ``rows`` as one int64, the table's order
    (``pcapip.flows.reorder.sort_key``)."""
    return (S[rows, L.F_CAPTURE] << ORDER_SHIFT) + S[rows, L.F_FIRST_FRAME]


class Watermark:
    """Per epoch of serial numbers: TCP flows created and not handed out yet, and the
    smallest first packet of a flow created in it."""

    def __init__(self) -> None:
        self.live = np.zeros(64, dtype=np.int64)
        self.low = np.full(64, NONE, dtype=np.int64)

    def _fit(self, top: int) -> None:
        """Room for epochs below ``top``."""
        if top > self.live.size:
            size = max(top, 2 * self.live.size)
            self.live = np.concatenate((self.live, np.zeros(size - self.live.size, np.int64)))
            self.low = np.concatenate((self.low, np.full(size - self.low.size, NONE)))

    def created(self, S: np.ndarray, rows: np.ndarray, first: int, in_order: bool) -> None:
        """Count the flows just started: serial numbers ``first``, ``first`` + 1, ... in
        table rows ``rows`` (the loop takes rows from the top of the free stack: ``rows``
        is that stack's slice, last row first). ``in_order``: their first packets come in
        the order of their serials, so an epoch's smallest is its first flow's."""
        k = rows.size
        if k == 0:
            return
        ser = np.arange(first, first + k, dtype=np.int64)
        ep = ser >> SHIFT
        self._fit(int(ep[-1]) + 1)
        starts = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])
        if in_order:  # (only the rows of each epoch's first flow are read)
            keys = first_packet(S, rows[k - 1 - starts])
        else:
            keys = np.minimum.reduceat(first_packet(S, rows[::-1]), starts)
        at = ep[starts]
        self.low[at] = np.minimum(self.low[at], keys)
        self.live[at] += np.diff(np.r_[starts, k])

    def bound(self, serials: np.ndarray) -> int:
        """No TCP flow not handed out yet, other than those of ``serials``, began before
        this (capture, frame) key (NONE: there is none)."""
        ep = serials >> SHIFT
        left = self.live.copy()
        if ep.size:
            self._fit(int(ep.max()) + 1)
            left = self.live - np.bincount(ep, minlength=self.live.size)
        some = left > 0
        return int(self.low[some].min()) if some.any() else int(NONE)

    def handed_out(self, serials: np.ndarray) -> None:
        """The flows of ``serials`` left as output rows."""
        if serials.size:
            ep = serials >> SHIFT
            self._fit(int(ep.max()) + 1)
            self.live -= np.bincount(ep, minlength=self.live.size)
