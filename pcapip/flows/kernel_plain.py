"""The compiled pass over plain flow-table rows: the facts every output row needs, read
straight from the table.

A SYN flood ends millions of plain rows; computing their columns with numpy copied each
row out of the table (464 bytes, for the ~35 fields used) and made ~80 array passes per
slice. ``plain_rows`` reads each row once and writes one column of ``out`` per fact
(``PL_*``); ``pcapip.flows.plainrow`` turns them into the output columns, with the same
rules as ``pcapip.flows.rows`` applies to one TcpFlow (tested against it).
"""

from __future__ import annotations

from pcapip.sources.accel import kernel, kernel_helper

from .layout import (
    C0_P0,
    C0_P1,
    C0_RST,
    C0_SIDE,
    C1_RST,
    C1_SIDE,
    F_BYTES,
    F_CAPTURE,
    F_EGRESS,
    F_END,
    F_FIRST_FRAME,
    F_FIRST_SIDE,
    F_HEADER,
    F_HS,
    F_HS_CAPTURE,
    F_HS_FRAME,
    F_HS_OPT_LEN,
    F_HS_TOA,
    F_NCLOSES,
    F_PACKETS,
    F_PAY0,
    F_PAY1,
    F_START,
    F_SYN_SEQ,
    F_SYNACK,
    F_TUN_TEXT,
    K_AHI,
    K_ALO,
    K_APORT,
    K_BHI,
    K_BLO,
    K_BPORT,
    TA_SET,
    TD_SET,
    TS_SET,
    XBASE,
)
from .state import HS_DONE

NULL = -9223372036854775808  # a missing integer (pcapip.flows.packed.NULL)

# rows of ``out``: one fact per row, one flow-table row per column
PL_CAPTURE = 0
PL_FIRST_FRAME = 1
PL_START = 2
PL_END = 3
PL_E_HI = 4  # the egress address's halves, then the origin's
PL_E_LO = 5
PL_O_HI = 6
PL_O_LO = 7
PL_E_PORT = 8
PL_O_PORT = 9
PL_PACKETS = 10
PL_BYTES = 11
PL_TUN = 12  # the tunnel text (1 + its vocabulary code; 0: none)
PL_KIND = 13  # F_HEADER: the PROXY header read from the first segment, if any
PL_EGRESS = 14  # the egress side as known (-1: guessed)
PL_OG = 15  # the origin side (0: a, 1: b), known or guessed
PL_SPOKE = 16  # the egress side sent payload
PL_SILENT = 17  # the origin closed first, having sent nothing, after data from the egress
PL_TS = 18  # TOA in the SYN, the handshake ACK, data
PL_TA = 19
PL_TD = 20
PL_HS_DONE = 21
PL_HS_TOA = 22
PL_NR_CAP = 23  # the handshake ACK with no room for a TOA (capture, frame), else NULL
PL_NR_FRAME = 24
PL_START_SEEN = 25  # a SYN or SYN-ACK was seen
PL_SYN = 26  # what attempts.attempt_status asks: SYN, SYN-ACK, handshake state, ...
PL_SYNACK = 27
PL_HS = 28
PL_ANY_PAY = 29  # payload from either side
PL_E_CLOSED = 30  # the egress side closed
PL_O_CLOSED = 31  # the origin side closed
PL_O_RST = 32  # ... with a RST
N_PLAIN = 33


@kernel_helper
def origin_side(S, r):
    """The origin's side of row ``r`` (0: a, 1: b): the egress's other side; with no egress
    known, the higher port is the client's, else the side that did not send first."""
    egress = S[r, F_EGRESS]
    if egress >= 0:
        return 1 - egress
    a_port, b_port = S[r, K_APORT], S[r, K_BPORT]
    if a_port != b_port:
        return 1 if a_port > b_port else 0
    return S[r, F_FIRST_SIDE]


@kernel_helper
def put_ends(S, r, og, out, i):
    """Where and when, the two ends (egress first), the counters, tunnel and header kind."""
    out[PL_CAPTURE, i] = S[r, F_CAPTURE]
    out[PL_FIRST_FRAME, i] = S[r, F_FIRST_FRAME]
    out[PL_START, i] = S[r, F_START]
    out[PL_END, i] = S[r, F_END]
    e_a = og == 1
    out[PL_E_HI, i] = S[r, K_AHI] if e_a else S[r, K_BHI]
    out[PL_E_LO, i] = S[r, K_ALO] if e_a else S[r, K_BLO]
    out[PL_O_HI, i] = S[r, K_BHI] if e_a else S[r, K_AHI]
    out[PL_O_LO, i] = S[r, K_BLO] if e_a else S[r, K_ALO]
    out[PL_E_PORT, i] = S[r, K_APORT] if e_a else S[r, K_BPORT]
    out[PL_O_PORT, i] = S[r, K_BPORT] if e_a else S[r, K_APORT]
    out[PL_PACKETS, i] = S[r, F_PACKETS]
    out[PL_BYTES, i] = S[r, F_BYTES]
    out[PL_TUN, i] = S[r, F_TUN_TEXT]
    out[PL_KIND, i] = S[r, F_HEADER]
    out[PL_EGRESS, i] = S[r, F_EGRESS]
    out[PL_OG, i] = og


@kernel_helper
def put_handshake(S, X, r, out, i):
    """TOA per packet kind, the handshake, a handshake ACK with no room for TOA."""
    out[PL_TS, i] = X[r, TS_SET - XBASE] != 0
    out[PL_TA, i] = X[r, TA_SET - XBASE] != 0
    out[PL_TD, i] = X[r, TD_SET - XBASE] != 0
    done = S[r, F_HS] == HS_DONE
    out[PL_HS_DONE, i] = done
    out[PL_HS_TOA, i] = S[r, F_HS_TOA] != 0
    no_room = done and S[r, F_HS_TOA] == 0 and S[r, F_HS_OPT_LEN] > 40 - 8
    no_room = no_room and S[r, F_HS_FRAME] >= 0
    out[PL_NR_CAP, i] = S[r, F_HS_CAPTURE] if no_room else NULL
    out[PL_NR_FRAME, i] = S[r, F_HS_FRAME] if no_room else NULL
    syn = S[r, F_SYN_SEQ] >= 0
    out[PL_START_SEEN, i] = syn or S[r, F_SYNACK] != 0
    out[PL_SYN, i] = syn
    out[PL_SYNACK, i] = S[r, F_SYNACK] != 0
    out[PL_HS, i] = S[r, F_HS]


@kernel_helper
def put_closes(S, r, og, out, i):
    """Who spoke and who closed: the egress's payload, the origin's silent close, and
    which side closed (with a RST) for the attempt status."""
    pay_a, pay_b = S[r, F_PAY0] != 0, S[r, F_PAY1] != 0
    spoke = pay_a if og == 1 else pay_b
    out[PL_SPOKE, i] = spoke
    out[PL_ANY_PAY, i] = pay_a or pay_b
    nc = S[r, F_NCLOSES]
    c0 = nc > 0 and S[r, C0_SIDE] == og
    c1 = nc > 1 and S[r, C1_SIDE] == og
    out[PL_E_CLOSED, i] = (nc > 0 and S[r, C0_SIDE] != og) or (nc > 1 and S[r, C1_SIDE] != og)
    out[PL_O_CLOSED, i] = c0 or c1
    out[PL_O_RST, i] = (c0 and S[r, C0_RST] != 0) or (c1 and S[r, C1_RST] != 0)
    o_sent = S[r, C0_P0] if og == 0 else S[r, C0_P1]
    e_sent = S[r, C0_P1] if og == 0 else S[r, C0_P0]
    out[PL_SILENT, i] = S[r, F_EGRESS] >= 0 and spoke and c0 and o_sent == 0 and e_sent != 0


@kernel("void(i8[:, ::1], i8[:, ::1], i8[::1], i8[:, ::1])")
def plain_rows(S, X, rows, out):
    """Column ``i`` of ``out`` (N_PLAIN rows) gets the facts of flow-table row ``rows[i]``
    (S: the table's first XBASE fields, X: the rest)."""
    for i in range(rows.shape[0]):
        r = rows[i]
        og = origin_side(S, r)
        put_ends(S, r, og, out, i)
        put_handshake(S, X, r, out, i)
        put_closes(S, r, og, out, i)
