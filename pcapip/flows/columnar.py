"""Flow rows as columns: the compiled path's output, and the table's input.

Most connections of a capture are plain: a handshake, maybe a clean TOA
option, a first payload that is not a PROXY header, data, a close. Their
rows are computed here from the flow table's int64 rows all at once (the
same verdicts and findings ``pcapip.flows.rows.compact`` gives a ``TcpFlow``
in that state, checked by the tests against the per-packet path), so a
capture with a hundred thousand connections does not build a hundred
thousand Python objects on the way to its CSV.

``RowBlock`` holds rows column by column, whichever way they were made
(``FlowRow`` objects from flows that needed Python convert to a block and
back); blocks are packed (``pcapip.flows.packed``) as soon as they are made,
and the table is built from packed blocks only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pcapip.flows import kernel_plain as KP
from pcapip.flows import layout as L
from pcapip.flows.columns import METHODS, STATUSES
from pcapip.flows.findings import Finding
from pcapip.flows.packed import Vocab
from pcapip.flows.plainheader import proxy_headers
from pcapip.flows.plainrow import Client, Plain
from pcapip.flows.rowblock import RowBlock
from pcapip.flows.rows import MID_STREAM, Note, closed_silently, late_toa
from pcapip.flows.verdict import verdict


def compact_plain(tab: Any, rows: np.ndarray, vocab: Vocab) -> RowBlock:
    """Rows of flows held in the flow table ``tab`` (``TcpTable``) without a TcpFlow
    object, computed as columns.

    Such a flow raised no finding while its packets were read, read any TOA
    option itself (a clean IPv4 client variant) and, if its first segment
    was a PROXY header, read it from that one segment: a clean one in the
    row's header fields (HDR_ROW), any other in ``tab.headers`` (row -> HeaderSeen,
    HDR_DICT). The rules are those of ``pcapip.flows.rows._compact_tcp`` for
    these states, each row's findings in the same order. The address columns
    are address codes of ``vocab`` (``pcapip.flows.packed``), ready to pack.
    """
    p = Plain(tab, rows)
    block = RowBlock()
    c = block.cols  # numbers, flags and addresses as arrays, texts as lists: both pack as they are
    p.ends(vocab, c)
    cl = Client(p.n, vocab)
    late = _toa(p, cl)
    notes = proxy_headers(p, cl, tab.P, tab.headers, late)
    _findings(block, p, notes, late)
    no = np.zeros(p.n, dtype=bool)
    m, st = verdict(cl.hdr_status, cl.hdr_version, p.has_toa, no, no, p.start_seen, p.attempts())
    c["method"] = np.array([vocab.code(x) for x in METHODS], dtype=np.int32)[m]
    cl.clients(c)
    # a tunnel's text is 1 + its code in this vocabulary (flows/tunnels.py)
    tun = p.F[KP.PL_TUN]
    c["tunnel"] = np.where(tun > 0, tun - 1, vocab.code("")).astype(np.int32)
    c["status"] = np.array([vocab.code(x) for x in STATUSES], dtype=np.int32)[st]
    cl.frames(c, p.n)
    return block


def _toa(p: Plain, cl: Client) -> dict[int, Note]:
    """The client from clean IPv4 TOA options the kernel read, the packets that carried
    one; returns the note of each row whose handshake completed without TOA in its ACK
    (TOA only in the SYN, or only later)."""
    toa_rows = np.flatnonzero(p.has_toa)
    late_note: dict[int, Note] = {}
    if toa_rows.size == 0:
        return late_note
    gt = p.g[toa_rows]
    Mt = p.whole(toa_rows)
    pt = np.arange(toa_rows.size)
    cl.client_ip[toa_rows] = Mt[pt, gt + L.T_IP]
    cl.client_port[toa_rows] = Mt[pt, gt + L.T_PORT]
    cl.hf_cap[toa_rows] = Mt[pt, gt + L.T_CAP]
    cl.hf_frame[toa_rows] = Mt[pt, gt + L.T_FRAME]
    # the packets that carried a TOA: SYN, handshake ACK, data (in that order, once each)
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for k, b in enumerate((L.TS_SET, L.TA_SET, L.TD_SET)):
        kc, kf = Mt[:, b + L.T_CAP], Mt[:, b + L.T_FRAME]
        keep = Mt[:, b] != 0
        for s_set, s_cap, s_frame in seen:
            keep &= ~(s_set & (s_cap == kc) & (s_frame == kf))
        seen.append((keep, kc, kf))
        cl.carried.append((toa_rows[keep], np.full(int(keep.sum()), k), kc[keep], kf[keep]))
    cl.toa_kind[toa_rows] = Mt[pt, gt + L.T_KIND] * 256 + Mt[pt, gt + L.T_LEN]
    late = np.flatnonzero(p.has_toa & ~p.ta_set & p.hs_done)
    for r, row in zip(late.tolist(), p.whole(late).tolist(), strict=True):
        syn = row[L.TS_SET + L.T_FRAME] if p.ts_set[r] else None
        data = (row[L.TD_SET + L.T_FRAME], row[L.TD_SET + L.T_CAP]) if p.td_set[r] else None
        late_note[r] = late_toa(syn, data, row[L.F_HS_FRAME], row[L.F_HS_CAPTURE])
    return late_note


def _findings(
    block: RowBlock, p: Plain, notes: dict[int, list[Finding]], late: dict[int, Note]
) -> None:
    """Every row's findings in the order _compact_tcp notes them (only that order matters:
    the table sorts findings per flow, ties kept in the order they were noted)."""
    add = block.add_finding
    for r, items in notes.items():
        for f in items:
            add(r, f.code, f.message, f.frame, f.capture)
    for r, note in late.items():
        add(r, *note)
    # no client address carried and the origin hung up on the first data
    quiet = np.flatnonzero(p.silent & ~p.has_toa & p.start_seen & ~p.has_hdr)
    for r, rst, fr, cap in zip(
        quiet.tolist(),
        p.field(quiet, L.C0_RST).tolist(),
        p.field(quiet, L.C0_FRAME).tolist(),
        p.field(quiet, L.C0_CAP).tolist(),
        strict=True,
    ):
        add(r, *closed_silently("RST" if rst else "FIN"), fr, cap)
    mid = np.flatnonzero(~p.start_seen)
    for r, fr, cap in zip(
        mid.tolist(),
        p.field(mid, L.F_FIRST_FRAME).tolist(),
        p.field(mid, L.F_CAPTURE).tolist(),
        strict=True,
    ):
        add(r, *MID_STREAM, fr, cap)
