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


def first_packet(S: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(capture, first frame) of table rows ``rows`` as one int64, the table's order
    (``pcapip.flows.reorder.sort_key``)."""
    return S[rows, L.F_CAPTURE] * (1 << 40) + S[rows, L.F_FIRST_FRAME]


class Watermark:
    """Per epoch of serial numbers: TCP flows created and not handed out yet, and the
    smallest first packet of a flow created in it."""

    def __init__(self) -> None:
        self.live = np.zeros(64, dtype=np.int64)
        self.low = np.full(64, NONE, dtype=np.int64)

    def _epochs(self, S: np.ndarray, rows: np.ndarray) -> np.ndarray:
        ep = S[rows, L.F_SERIAL] >> SHIFT
        top = int(ep.max()) + 1 if ep.size else 0
        if top > self.live.size:
            size = max(top, 2 * self.live.size)
            self.live = np.concatenate((self.live, np.zeros(size - self.live.size, np.int64)))
            self.low = np.concatenate((self.low, np.full(size - self.low.size, NONE)))
        return ep

    def created(self, S: np.ndarray, rows: np.ndarray) -> None:
        """Count the flows just started in table rows ``rows``."""
        if rows.size == 0:
            return
        ep = self._epochs(S, rows)
        order = np.argsort(ep, kind="stable")
        ep = ep[order]
        starts = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])
        keys = np.minimum.reduceat(first_packet(S, rows[order]), starts)
        at = ep[starts]
        self.low[at] = np.minimum(self.low[at], keys)
        self.live += np.bincount(ep, minlength=self.live.size)

    def handed_out(self, S: np.ndarray, rows: np.ndarray) -> None:
        """The flows of table rows ``rows`` left as output rows."""
        if rows.size:
            ep = self._epochs(S, rows)
            self.live -= np.bincount(ep, minlength=self.live.size)

    def bound(self, S: np.ndarray, waiting: np.ndarray) -> int:
        """No TCP flow not handed out yet, other than those in rows ``waiting``, began
        before this (capture, frame) key (NONE: there is none)."""
        ep = self._epochs(S, waiting)
        left = self.live - np.bincount(ep, minlength=self.live.size)
        some = left > 0
        return int(self.low[some].min()) if some.any() else int(NONE)
