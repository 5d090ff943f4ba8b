"""When flows end, and what they become.

The policies: a TCP connection closed in both directions (or reset) is over
once quiet for ``linger`` seconds of capture time (time enough for the last
retransmissions), a half-closed one after ``evict_after``, a connection
attempt that never completed its handshake after ``attempt_timeout``
(``pcapip.flows.attempts``); a UDP flow after ``udp_timeout``
(``pcapip.flows.udp``). ``max_flows`` caps the flows open at once: closed
connections go first (they only wait out ``linger`` and lose nothing), then
the oldest open ones, which get the finding ``capture.flow_limit``.

Ended rows of the TCP table become output rows together (:func:`flush`):
plain ones column by column (``pcapip.flows.columnar``), the few with
Python state through their TcpFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from pcapip.flows import layout as L
from pcapip.flows.columnar import compact_plain
from pcapip.flows.deadlines import done
from pcapip.flows.packed import PackedRows
from pcapip.flows.rowflow import load, store
from pcapip.flows.rows import FlowRow, compact
from pcapip.flows.state import FlowBase, TcpFlow, UdpFlow
from pcapip.flows.watermark import NONE, first_packet

if TYPE_CHECKING:
    from pcapip.flows.holding import Held
    from pcapip.flows.tcptable import TcpTable
    from pcapip.flows.udp import UdpFlows

OnEnded = Callable[[FlowBase, FlowRow], None]
Finish = Callable[[TcpFlow], None]  # the rules' last word on a flow (Machine.finish_tcp)

FLOW_LIMIT = "capture.flow_limit"
# ended flows of the compiled table turned into rows together (unless reported one by one)
COMPACT_ROWS = 8192
# ended flows of the compiled table turned into rows at once at most (the end of a capture
# may end half a million attempts together: a copy of their table rows is made per block)
COMPACT_MAX = 16_384
# ended rows kept waiting for the flows that began before them at most (then they leave
# out of order, and the table sorts them: pcapip.flows.reorder)
WAIT_MAX = 32_768


def end_rows(tab: TcpTable, rows: np.ndarray) -> None:
    """End the table's flows ``rows`` now."""
    if rows.size:
        tab.S[rows, L.F_STATE] = L.ST_ENDED
        tab.ct[tab.K.CT_OPEN] -= rows.size
        tab.ended.append(rows)


def end_all(tab: TcpTable) -> None:
    end_rows(tab, np.flatnonzero(tab.S[:, L.F_STATE] == L.ST_OPEN))
    tab.due.forget()  # (no flow is open: every deadline is of an ended one)


def end_done(tab: TcpTable) -> None:
    """End the open flows closed in both directions or reset (``deadlines.done``): only
    their late retransmissions could still change their rows, never the clock."""
    S = tab.S
    end_rows(tab, np.flatnonzero((S[:, L.F_STATE] == L.ST_OPEN) & done(S[:, L.F_FIN_MASK])))


def enforce_cap(tab: TcpTable, udp: UdpFlows, max_flows: int) -> int:
    """End flows until at most ``max_flows`` are open: closed TCP flows first, in the order
    they closed, then the oldest open flows of either transport (they get FLOW_LIMIT).
    Returns how many open flows were cut short that way."""
    over = tab.open_count() + udp.open_count() - max_flows
    if over <= 0:
        return 0
    S = tab.S
    rows = np.flatnonzero((S[:, L.F_STATE] == L.ST_OPEN) & (S[:, L.F_CLOSED] != 0))
    if rows.size > over:
        rows = rows[np.argsort(S[rows, L.F_CLOSE_ORDER], kind="stable")[:over]]
    end_rows(tab, rows)
    over -= int(rows.size)
    if over <= 0:
        return 0
    rows = np.flatnonzero(S[:, L.F_STATE] == L.ST_OPEN)
    rows = rows[np.argsort(S[rows, L.F_SERIAL], kind="stable")[:over]]
    oldest: list[tuple[int, int, Any]] = list(
        zip(S[rows, L.F_START].tolist(), [0] * rows.size, rows.tolist(), strict=True)
    )
    oldest += udp.oldest_open(over)
    oldest.sort(key=lambda x: (x[0], x[1]))
    note = f"tracking ended early: more than {max_flows} flows were open at once (--max-flows)"
    cut = oldest[:over]
    for _, _, handle in cut:
        if isinstance(handle, UdpFlow):
            handle.note(FLOW_LIMIT, note, None, handle.capture)
            udp.end(handle)
        else:
            fl = load(tab, handle)
            fl.note(FLOW_LIMIT, note, None, fl.capture)
            store(tab, handle, fl)
            end_rows(tab, np.array([handle], dtype=np.int64))
    return len(cut)


def flush(
    tab: TcpTable,
    finish: Finish,
    held: Held,
    settled: list[Any],
    cb: OnEnded | None,
    force: bool,
    floor: int = NONE,
) -> None:
    """Take the flows ended in this feed out of the index; turn ended flows into rows
    (and free their table rows) now when asked to or when rows are reported as flows
    end, else once enough have gathered: a block of thousands of rows costs about what
    a block of tens does. Unless forced or reported one by one, rows leave in order of
    their first packet, after every row that began before them (``pcapip.flows.watermark``;
    ``floor``: the first packet of the oldest open UDP flow), so the table keeps them as
    they are; the others wait for a later flush (at most WAIT_MAX of them)."""
    if tab.settled:
        settled.extend(tab.settled)
        tab.settled = []
    if tab.ended:
        rows = np.concatenate(tab.ended) if len(tab.ended) > 1 else tab.ended[0]
        tab.ended = []
        tab.unindex_fn(tab.H, tab.S, rows, rows.size)
        tab.pending.append(rows)
        tab.npending += rows.size
    new = tab.npending - tab.nwaiting
    if not tab.pending or not (force or cb is not None or new >= COMPACT_ROWS):
        return
    rows = np.concatenate(tab.pending) if len(tab.pending) > 1 else tab.pending[0]
    tab.pending = []
    tab.npending = tab.nwaiting = 0
    if cb is None:  # in the table's order: the table then keeps them as they are
        key = first_packet(tab.S, rows)
        order = np.argsort(key, kind="stable")
        rows = rows[order]
        if not force:
            key = key[order]
            bound = min(floor, tab.mark.bound(tab.S[rows, L.F_SERIAL]))
            cut = int(np.searchsorted(key, bound, side="right"))
            if rows.size - cut <= WAIT_MAX:
                tab.pending = [rows[cut:]]
                tab.npending = tab.nwaiting = rows.size - cut
                rows = rows[:cut]
                if cut == 0:
                    return
        del key, order
    tab.mark.handed_out(tab.S[rows, L.F_SERIAL])
    py = tab.S[rows, L.F_EXTRA] != 0
    _rows_plain(tab, finish, held, rows[~py], cb)
    if py.any():
        _rows_python(tab, finish, held, rows[py], cb)
    _free(tab, rows)


def _rows_plain(
    tab: TcpTable, finish: Finish, held: Held, plain: np.ndarray, cb: OnEnded | None
) -> None:
    """Rows of ended flows without Python state, built column by column from the table."""
    vocab = held.vocab
    for lo in range(0, plain.size, COMPACT_MAX):
        part = plain[lo : lo + COMPACT_MAX]
        block = PackedRows.pack(compact_plain(tab, part, vocab), vocab)
        held.keep(block)
        if cb is not None:
            for s, r in zip(part.tolist(), block.to_rows(vocab), strict=True):
                fl = load(tab, s)
                finish(fl)
                cb(fl, r)
    if tab.headers:
        for s in plain[tab.S[plain, L.F_HEADER] == L.HDR_DICT].tolist():
            del tab.headers[s]


def _rows_python(
    tab: TcpTable, finish: Finish, held: Held, rows: np.ndarray, cb: OnEnded | None
) -> None:
    """Rows of ended flows with Python state, each through its TcpFlow."""
    out = []
    flows = []
    for s in rows.tolist():
        fl = load(tab, s)
        finish(fl)
        out.append(compact(fl))
        flows.append(fl)
        del tab.extra[s]
    held.keep(out)
    if cb is not None:
        for fl, r in zip(flows, out, strict=True):
            cb(fl, r)


def _free(tab: TcpTable, rows: np.ndarray) -> None:
    """Give ended rows back to the free stack."""
    S, X = tab.S, tab.X
    S[rows, L.F_STATE] = L.ST_FREE
    # a free row of X is a zero row (the loop does not reset it for a new flow). A row of X
    # is written only with a TOA group's mark or a header the loop read (F_HEADER HDR_ROW),
    # and zeroed when those marks go (rowflow.store): only such rows are read and cleared
    # here, which leaves the pages of rows never written untouched and mostly unread
    for lo in range(0, rows.size, COMPACT_MAX):  # (a gathered copy per block)
        part = rows[lo : lo + COMPACT_MAX]
        flat, at = X.reshape(-1), part * X.shape[1]
        dirty = S[part, L.F_HEADER] == L.HDR_ROW
        for m in _MARKS:
            dirty |= flat[at + m] != 0
        used = part[dirty]
        if used.size:
            X[used] = 0
    top = int(tab.ct[tab.K.CT_FREE_TOP])
    tab.free[top : top + rows.size] = rows
    tab.ct[tab.K.CT_FREE_TOP] = top + rows.size


_MARKS = (L.TS_SET - L.XBASE, L.TA_SET - L.XBASE, L.TD_SET - L.XBASE)
