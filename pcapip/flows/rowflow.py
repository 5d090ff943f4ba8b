"""A flow of the compiled table as a TcpFlow, and back.

The per-packet rules (``pcapip.flows.machine``) work on TcpFlow objects; the
compiled loop on rows of the int64 table (``pcapip.flows.layout``). A packet
handed over is applied to the TcpFlow built from its flow's row, which is
then written back: the row stays the authority for every scalar fact, and
the object is kept (``table.extra``) only for what only Python holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pcapip.flows import layout as L
from pcapip.flows.columnar import row_header
from pcapip.flows.state import TcpFlow, ToaSeen

if TYPE_CHECKING:
    from pcapip.flows.tcptable import TcpTable

_MASK64 = (1 << 64) - 1


def load(tab: TcpTable, s: int) -> TcpFlow:
    """The TcpFlow of row ``s``: its Python object brought up to date, or a new one."""
    r = tab.S[s].tolist() + tab.X[s].tolist()  # all NFIELDS, numbered as in layout
    fl = tab.extra.get(s)
    if fl is None:
        key = (
            6,
            r[L.K_AHI] & _MASK64,
            r[L.K_ALO] & _MASK64,
            r[L.K_APORT],
            r[L.K_BHI] & _MASK64,
            r[L.K_BLO] & _MASK64,
            r[L.K_BPORT],
        )
        fl = TcpFlow(key, 0, 0, 0, 0, 0)
        fl.serial = r[L.F_SERIAL]
        for base, attr in (
            (L.TS_SET, "toa_syn"),
            (L.TA_SET, "toa_ack"),
            (L.TD_SET, "toa_data"),
        ):
            if r[base]:
                ip = r[base + L.T_IP]
                setattr(
                    fl,
                    attr,
                    ToaSeen(
                        f"{ip >> 24}.{(ip >> 16) & 255}.{(ip >> 8) & 255}.{ip & 255}",
                        r[base + L.T_PORT],
                        r[base + L.T_KIND],
                        r[base + L.T_LEN],
                        tab.var_names[r[base + L.T_VAR]],
                        r[base + L.T_FRAME],
                        r[base + L.T_CAP],
                    ),
                )
    fl.capture = r[L.F_CAPTURE]
    fl.first_frame = r[L.F_FIRST_FRAME]
    fl.start_ns = r[L.F_START]
    fl.end_ns = r[L.F_END]
    fl.first_side = r[L.F_FIRST_SIDE]
    fl.packets = r[L.F_PACKETS]
    fl.bytes = r[L.F_BYTES]
    e = r[L.F_EGRESS]
    fl.egress = None if e < 0 else e
    fl.egress_by = r[L.F_EGRESS_BY]
    v = r[L.F_SYN_SEQ]
    fl.syn_seq = None if v < 0 else v
    fl.synack_seen = bool(r[L.F_SYNACK])
    i0, i1 = r[L.F_ISN0], r[L.F_ISN1]
    fl.isn = [None if i0 < 0 else i0, None if i1 < 0 else i1]
    fl.hs = r[L.F_HS]
    v = r[L.F_HS_FRAME]
    fl.hs_frame = None if v < 0 else v
    fl.hs_capture = r[L.F_HS_CAPTURE]
    fl.hs_opt_len = r[L.F_HS_OPT_LEN]
    fl.hs_toa = bool(r[L.F_HS_TOA])
    fl.closed = bool(r[L.F_CLOSED])
    fl.fin_mask = r[L.F_FIN_MASK]
    closes = []
    for q in range(r[L.F_NCLOSES]):
        b = L.C0_SIDE + q * L.CLOSE_WIDTH
        closes.append(
            (
                r[b],
                "rst" if r[b + 1] else "fin",
                r[b + 2],
                r[b + 3],
                bool(r[b + 4]),
                bool(r[b + 5]),
            )
        )
    fl.closes = closes
    fl.pay_seen = [bool(r[L.F_PAY0]), bool(r[L.F_PAY1])]
    fp: list[tuple[int, int, bytes] | None] = [None, None]
    for side in (0, 1):
        if fl.pay_seen[side]:
            b = L.FP0_FRAME + side * L.FP_WIDTH
            off = side * L.PAYLOAD_KEEP
            fp[side] = (r[b], r[b + 1], tab.P[s, off : off + r[b + 2]].tobytes())
    fl.first_pay = fp
    fl.settled = bool(r[L.F_SETTLED])
    fl.no_header = bool(r[L.F_NO_HEADER])
    fl.truncated = bool(r[L.F_TRUNCATED])
    if r[L.F_HEADER] == L.HDR_DICT:
        fl.header = tab.headers[s]
    elif r[L.F_HEADER] == L.HDR_ROW:
        fl.header = row_header(r)
    return fl

def store(tab: TcpTable, s: int, fl: TcpFlow) -> None:
    """Write ``fl`` back to row ``s``; keep the object only if it holds Python-only state."""
    closes = [0] * (2 * L.CLOSE_WIDTH)
    for q, cl in enumerate(fl.closes[:2]):
        b = q * L.CLOSE_WIDTH
        closes[b : b + 6] = [
            cl[0],
            1 if cl[1] == "rst" else 0,
            cl[2],
            cl[3],
            int(cl[4]),
            int(cl[5]),
        ]
    fp = [0] * (2 * L.FP_WIDTH)
    P = tab.P
    for side in (0, 1):
        x = fl.first_pay[side]
        if x is not None:
            fp[side * L.FP_WIDTH : (side + 1) * L.FP_WIDTH] = [x[0], x[1], len(x[2])]
            off = side * L.PAYLOAD_KEEP
            P[s, off : off + len(x[2])] = np.frombuffer(x[2], dtype=np.uint8)
    isn0, isn1 = fl.isn
    row = [
        fl.capture,
        fl.first_frame,
        fl.start_ns,
        fl.end_ns,
        fl.first_side,
        fl.packets,
        fl.bytes,
        -1 if fl.egress is None else fl.egress,
        fl.egress_by,
        -1 if fl.syn_seq is None else fl.syn_seq,
        int(fl.synack_seen),
        -1 if isn0 is None else isn0,
        -1 if isn1 is None else isn1,
        fl.hs,
        -1 if fl.hs_frame is None else fl.hs_frame,
        fl.hs_capture,
        fl.hs_opt_len,
        int(fl.hs_toa),
        int(fl.closed),
        fl.fin_mask,
        min(len(fl.closes), 2),
        *closes,
        int(fl.pay_seen[0]),
        int(fl.pay_seen[1]),
        *fp,
        int(fl.settled),
        int(fl.no_header),
        int(fl.truncated),
    ]
    S = tab.S
    S[s, L.ROW_FIRST : L.ROW_END] = row
    S[s, L.F_BUFFERING] = fl.streams is not None
    keep = (
        fl.findings
        or fl.truncated
        or fl.streams is not None
        or fl.header is not None
        or fl.stacked is not None
        or fl.toa_syn is not None
        or fl.toa_ack is not None
        or fl.toa_data is not None
        or fl.toa_bad
        or fl.incomplete
        or fl.gap
        or fl.base[0] is not None
        or fl.base[1] is not None
        or fl.noheader[0]
        or fl.noheader[1]
    )
    if S[s, L.F_HEADER]:  # the object holds the header from now on
        if S[s, L.F_HEADER] == L.HDR_DICT:
            del tab.headers[s]
        S[s, L.F_HEADER] = 0
    if keep:
        tab.extra[s] = fl
        S[s, L.F_EXTRA] = 1
    else:
        tab.extra.pop(s, None)
        S[s, L.F_EXTRA] = 0
        X, xb = tab.X, L.XBASE
        if X[s, L.TS_SET - xb] or X[s, L.TA_SET - xb] or X[s, L.TD_SET - xb]:
            X[s, L.TS_SET - xb] = X[s, L.TA_SET - xb] = X[s, L.TD_SET - xb] = 0

