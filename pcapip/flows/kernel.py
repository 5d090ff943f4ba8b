"""The compiled flow loop: the per-packet rules for the common TCP packets.

``track_tcp`` walks a batch's TCP packets in capture order against the flow
table (one int64 row per flow, see ``pcapip.flows.layout``; an open-addressing
hash index maps flow keys to rows). For a packet whose whole effect it knows
(counters, SYN / SYN-ACK / handshake ACK, a clean IPv4 TOA option, payload
of a flow whose header question is settled, a first payload that cannot
start a PROXY header or that holds a clean v1 TCP4 / v2 INET header and
data, FIN/RST) it applies the rules of ``pcapip.flows.machine`` itself. Any other packet is *handed over*: the loop
leaves the packet's flow untouched, marks it, and hands over every later
packet of the same flow in this call too, so Python applies them in order
(the first one with the Python rules, the rest by calling the loop again).

Like the engine's loops (``pcapip.sources.accel``), each function here is
plain Python over indexable sequences that also compiles with numba; byte
values are combined with multiplications (see ``pcapip.decode.kernel``) and
every integer is int64.
"""

from __future__ import annotations

from pcapip.sources.accel import kernel, kernel_helper

from .layout import (
    C0_CAP,
    C0_FRAME,
    C0_P0,
    C0_P1,
    C0_RST,
    C0_SIDE,
    CLOSE_WIDTH,
    F_BUFFERING,
    F_BYTES,
    F_CAPTURE,
    F_CLOSE_ORDER,
    F_CLOSED,
    F_EGRESS,
    F_EGRESS_BY,
    F_END,
    F_EXTRA,
    F_FIN_MASK,
    F_FIRST_FRAME,
    F_FIRST_SIDE,
    F_HEADER,
    F_HS,
    F_HS_CAPTURE,
    F_HS_FRAME,
    F_HS_OPT_LEN,
    F_HS_TOA,
    F_ISN0,
    F_MARK,
    F_NCLOSES,
    F_NO_HEADER,
    F_PACKETS,
    F_PAY0,
    F_SERIAL,
    F_SETTLED,
    F_START,
    F_STATE,
    F_SYN_SEQ,
    F_SYNACK,
    FP0_CAP,
    FP0_FRAME,
    FP0_LEN,
    FP_WIDTH,
    HDR_ROW,
    HK_CAP,
    HK_DPORT,
    HK_DST,
    HK_FAM,
    HK_FRAME,
    HK_LEN,
    HK_SPORT,
    HK_SRC,
    HK_VER,
    K_AHI,
    K_ALO,
    K_APORT,
    K_BHI,
    K_BLO,
    K_BPORT,
    K_HASH,
    K_TUN,
    PAYLOAD_KEEP,
    ST_ENDED,
    ST_OPEN,
    T_CAP,
    T_FRAME,
    T_IP,
    T_KIND,
    T_LEN,
    T_PORT,
    T_VAR,
    TA_SET,
    TD_SET,
    TS_SET,
    XBASE,
    fingerprint,
)
from .state import BY_SYN, BY_SYNACK, BY_TOA, HS_DONE, HS_FAILED, HS_NONE, HS_PENDING

# numba caches machine code per source file and does not see that the layout's field numbers
# (frozen into that code as constants) live in another module: this number ties the two, so a
# layout change must come with an edit here, which invalidates the cache (a test checks it).
BUILT_FOR_LAYOUT = 1849916041
if fingerprint() != BUILT_FOR_LAYOUT:
    raise ImportError(
        "pcapip.flows.kernel is out of date with pcapip.flows.layout: set BUILT_FOR_LAYOUT to "
        f"{fingerprint()}"
    )

# counters[] slots shared with the Python side
CT_FREE_TOP = 0  # entries left on the free-row stack
CT_DEFER = 1  # packets handed over in this call
CT_ENDED = 2  # rows ended in this call (port reuse)
CT_SETTLED = 3  # rows whose header question this call settled
CT_EVENTS = 4  # rows closed, fully closed or become attempts in this call: eviction candidates
CT_SERIAL = 5  # last flow serial number given out
CT_CLOSES = 6  # flows closed so far (close order)
CT_OPEN = 7  # open rows
CT_HEADERS = 8  # first segments left to Python to parse (the packet itself is applied)
CT_ATTEMPT_NS = 9  # (set by the caller) the attempt timeout: a later packet starts a new flow
# (set by the caller; a test switch) non-zero: hand over every packet the loop would apply
# itself, once its flow is found or created, so the Python rules apply them all
CT_EVERY_PACKET = 10
N_COUNTERS = 11

# rows of the ``out`` matrix, each filled from column 0 on and counted in ``ct``
OUT_K = 0  # packets handed over (their index in todo's numbering), counted in CT_DEFER
OUT_SLOT = 1  # their rows
OUT_FIRST = 2  # 1: the first of its flow in this call (for the Python rules), 0: a later one
OUT_ENDED = 3  # rows ended (CT_ENDED)
OUT_SETTLED = 4  # rows whose header question was settled (CT_SETTLED)
OUT_EVENTS = 5  # rows to schedule for eviction (CT_EVENTS)
OUT_HK = 6  # first segments whose header Python reads (CT_HEADERS)
OUT_HSLOT = 7  # their rows
N_OUT = 8

# the packet columns track_tcp reads, in the order of its ``pk`` tuple (the four address
# halves as int64 views of the uint64 columns; ``tunnel`` is the flows' tunnel key,
# pcapip.flows.tunnels), then the batch's bytes
PACKET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("src_hi", "i8"),
    ("src_lo", "i8"),
    ("dst_hi", "i8"),
    ("dst_lo", "i8"),
    ("sport", "u2"),
    ("dport", "u2"),
    ("tunnel", "i8"),
    ("frame", "i8"),
    ("ts_ns", "i8"),
    ("origlen", "i8"),
    ("tcp_flags", "u2"),
    ("seq", "u4"),
    ("ack", "u4"),
    ("opt_flags", "u1"),
    ("opt_off", "i4"),
    ("opt_len", "i4"),
    ("caplen", "i8"),
    ("frame_off", "i8"),
    ("pay_off", "i4"),
    ("pay_len", "i4"),
    ("pay_cap", "i4"),
    ("data", "u1"),
)
_PK = "Tuple((" + ", ".join(f"{t}[::1]" for _, t in PACKET_COLUMNS) + "))"

_M32 = 0xFFFFFFFF
_SIGN = -0x8000000000000000  # flips the sign bit: unsigned order as signed order
_V2SIG = (13, 10, 13, 10, 0, 13, 10, 81, 85, 73, 84, 10)
# v1 "PROXY TCP4 a.b.c.d e.f.g.h sport dport\r\n": its first 11 bytes, and the byte after
# each of the ten numbers
_V1HEAD = (80, 82, 79, 88, 89, 32, 84, 67, 80, 52, 32)
_V1SEP = (46, 46, 46, 32, 46, 46, 46, 32, 32, 13)
# flow-key hash multipliers: below 2**29, so three 32-bit parts times them sum below 2**63
_K1 = 0x19E3779B
_K2 = 0x1B873593
_K3 = 0x0CC9E2D5


@kernel_helper
def push(out, ct, c, r, v):
    """Append ``v`` to row ``r`` of the out matrix, whose length is ``ct[c]``."""
    n = ct[c]
    out[r, n] = v
    ct[c] = n + 1


@kernel_helper
def hand_over(out, ct, k, s, first):
    """List packet ``k`` of flow row ``s`` for Python (``first``: 1 if it is the flow's first
    packet handed over in this call)."""
    n = ct[CT_DEFER]
    out[OUT_K, n] = k
    out[OUT_SLOT, n] = s
    out[OUT_FIRST, n] = first
    ct[CT_DEFER] = n + 1


@kernel_helper
def ask_header(out, ct, k, s):
    """List packet ``k``, the first segment of flow row ``s``, for Python to read its header."""
    n = ct[CT_HEADERS]
    out[OUT_HK, n] = k
    out[OUT_HSLOT, n] = s
    ct[CT_HEADERS] = n + 1


@kernel_helper
def flow_key(sh, sl, dh, dl, sp, dp, tun):
    """The flow key (A high, low, port, B high, low, port, tunnel), endpoint A the smaller
    (address, port) compared unsigned, and the side that sent (0: A)."""
    xs = sh ^ _SIGN
    xd = dh ^ _SIGN
    if xs != xd:
        src_first = xs < xd
    else:
        xs = sl ^ _SIGN
        xd = dl ^ _SIGN
        src_first = xs < xd if xs != xd else sp <= dp
    if src_first:
        return (sh, sl, sp, dh, dl, dp, tun), 0
    return (dh, dl, dp, sh, sl, sp, tun), 1


@kernel_helper
def key_hash(key):
    """The same hash as pcapip.flows.tracker.row_hash; no product can overflow int64 (signed
    overflow is undefined behaviour for the compiler, and Python's ints do not wrap)."""
    ahi, alo, ap, bhi, blo, bp, tun = key
    fa = (ahi ^ (ahi >> 32) ^ alo ^ (alo >> 32) ^ tun) & _M32
    fb = (bhi ^ (bhi >> 32) ^ blo ^ (blo >> 32)) & _M32
    h = fa * _K1 + fb * _K2 + (ap + bp * 65536) * _K3
    return h ^ (h >> 29)


@kernel_helper
def find_flow(S, H, h, key):
    """(the row holding ``key`` or -1, its position in the index ``H`` or the free
    position where it goes)."""
    ahi, alo, ap, bhi, blo, bp, tun = key
    hmask = H.shape[0] - 1
    pos = h & hmask
    s = -1
    while True:
        v = H[pos]
        if v == 0:
            break
        c = v - 1
        if (
            S[c, K_HASH] == h
            and S[c, K_AHI] == ahi
            and S[c, K_ALO] == alo
            and S[c, K_APORT] == ap
            and S[c, K_BHI] == bhi
            and S[c, K_BLO] == blo
            and S[c, K_BPORT] == bp
            and S[c, K_TUN] == tun
        ):
            s = c
            break
        pos = (pos + 1) & hmask
    return s, pos


@kernel_helper
def starts_anew(S, s, pure_syn, sq, tns, attempt_ns):
    """True when the packet starts a new connection on flow ``s``'s 4-tuple: a SYN on a
    closed flow or with another sequence number, or any packet after an attempt quiet past
    its timeout (over whenever eviction runs, so batch boundaries never change the rows)."""
    if pure_syn and (S[s, F_CLOSED] != 0 or (S[s, F_SYN_SEQ] >= 0 and sq != S[s, F_SYN_SEQ])):
        return True
    return (
        S[s, F_CLOSED] == 0
        and S[s, F_HS] != HS_DONE
        and (S[s, F_SYN_SEQ] >= 0 or S[s, F_SYNACK] != 0)
        and S[s, F_PAY0] == 0
        and S[s, F_PAY0 + 1] == 0
        and S[s, F_END] + attempt_ns < tns
    )


@kernel_helper
def end_flow(S, s, out, ct):
    """End flow ``s`` (its row stays in the index until Python has read it)."""
    S[s, F_STATE] = ST_ENDED
    push(out, ct, CT_ENDED, OUT_ENDED, s)
    ct[CT_OPEN] -= 1


@kernel_helper
def new_flow(S, free, tmpl, ct, h, key, side, fr, tns, capture):
    """Start a flow with key ``key`` in a free row (row s of X is a zero row: rows are
    freed with X cleared); the caller puts it in the index."""
    top = ct[CT_FREE_TOP] - 1
    s = free[top]
    ct[CT_FREE_TOP] = top
    row = S[s]
    for z in range(tmpl.shape[0]):  # (a slice assignment would need numba's allocator)
        row[z] = tmpl[z]
    ahi, alo, ap, bhi, blo, bp, tun = key
    S[s, K_HASH] = h
    S[s, K_AHI] = ahi
    S[s, K_ALO] = alo
    S[s, K_APORT] = ap
    S[s, K_BHI] = bhi
    S[s, K_BLO] = blo
    S[s, K_BPORT] = bp
    S[s, K_TUN] = tun
    ser = ct[CT_SERIAL] + 1
    ct[CT_SERIAL] = ser
    S[s, F_SERIAL] = ser
    S[s, F_CAPTURE] = capture
    S[s, F_FIRST_FRAME] = fr
    S[s, F_START] = tns
    S[s, F_END] = tns
    S[s, F_FIRST_SIDE] = side
    ct[CT_OPEN] += 1
    return s


@kernel_helper
def syn_effect(S, s, side, pure_syn, syn, sq):
    """What the SYN / SYN-ACK rules will make of the packet, before anything changes:
    (the egress side after them, this side's ISN after them, is it the handshake's ACK)."""
    egress = S[s, F_EGRESS]
    e1 = egress
    isn_s = S[s, F_ISN0 + side]
    is_hs = False
    if pure_syn:
        if S[s, F_SYN_SEQ] < 0:
            e1 = side
            isn_s = sq
    elif syn:
        if S[s, F_SYNACK] == 0:
            isn_s = sq
            if S[s, F_SYN_SEQ] < 0:
                e1 = 1 - side
    elif S[s, F_HS] == HS_PENDING and side == egress:
        is_hs = True
    return e1, isn_s, is_hs


@kernel_helper
def lone_toa_option(data, o, ocap, toa_mask):
    """Where the one TOA-kind option of the ``ocap`` option bytes at ``o`` starts, or -1:
    none, several, or a walk that is not clean (cut, bad length, bytes after EOL)."""
    j = 0
    found = -1
    while j < ocap:
        kd = data[o + j]
        if kd == 0:
            for z in range(j + 1, ocap):
                if data[o + z] != 0:
                    return -1
            break
        if kd == 1:
            j += 1
            continue
        if j + 1 >= ocap:
            return -1
        ln = data[o + j + 1]
        if ln < 2 or j + ln > ocap:
            return -1
        if toa_mask[kd]:
            if found >= 0:
                return -1
            found = j
        j += ln
    return found


@kernel_helper
def toa_client(data, b, toa_var):
    """The client of the TOA option at ``b``: (kind, variant, port, IPv4). The variant is -1
    unless it is a port+IPv4 client variant with a port and an address, and not an
    experiment-id option (RFC 6994) that only looks like one: what ``pcapip.dissect.
    tcp_options`` reads as a clean client (``tests/test_flows_kernel_reads.py`` holds the
    two together)."""
    kind = data[b] * 1
    var = -1
    if data[b + 1] == 8:
        var = toa_var[kind]
    port = data[b + 2] * 256 + data[b + 3]
    ip = data[b + 4] * 16777216 + data[b + 5] * 65536 + data[b + 6] * 256 + data[b + 7]
    if var < 0 or port == 0 or ip == 0:
        var = -1
    elif kind == 253 or kind == 254:
        exid = data[b + 2] * 16777216 + data[b + 3] * 65536 + data[b + 4] * 256 + data[b + 5]
        if port == 0xF989 or exid == 0xE2D4C3D9:
            var = -1
    return kind, var, port, ip


@kernel_helper
def toa_differs(X, s, ip, port):
    """True when flow ``s`` holds a TOA client other than (ip, port): that needs a finding."""
    cur = -1
    if X[s, TA_SET - XBASE] != 0:
        cur = TA_SET - XBASE
    elif X[s, TS_SET - XBASE] != 0:
        cur = TS_SET - XBASE
    elif X[s, TD_SET - XBASE] != 0:
        cur = TD_SET - XBASE
    return cur >= 0 and (X[s, cur + T_IP] != ip or X[s, cur + T_PORT] != port)


@kernel_helper
def toa_rule(S, X, s, side, egress, data, o, ocap, ol, toa):
    """The options (``ocap`` of ``ol`` bytes captured, at ``o``) of a packet whose option
    walk found a TOA kind: its clean TOA as toa_client gives it, or a variant of -1 when
    Python must apply the packet: the flow has Python state, the packet is not from the
    egress, the options are cut or not one clean TOA, or it names another client than the
    flow's current one (that needs a finding)."""
    toa_mask, toa_var = toa
    kind = port = ip = 0
    var = -1
    if S[s, F_EXTRA] == 0 and (egress < 0 or side == egress) and ocap >= ol:
        at = lone_toa_option(data, o, ocap, toa_mask)
        if at >= 0:
            kind, var, port, ip = toa_client(data, o + at, toa_var)
        if var >= 0 and toa_differs(X, s, ip, port):
            var = -1
    return kind, var, port, ip


@kernel_helper
def first_segment(S, s, side, egress, isn_s, start, data, pb, whole):
    """The first payload of a flow whose header question is open, on the egress side: (can
    the loop apply it, must it read a PROXY header from it). Only one in-order, ``whole``
    segment starting at sequence number ``start`` settles here: one that cannot begin a
    PROXY header (pcapip.flows.headers.parse rules it out by its first byte), or that may,
    on a flow without Python state; any other is parsed by Python."""
    ok = S[s, F_BUFFERING] == 0 and egress == side and isn_s >= 0 and whole
    header = False
    if ok:
        if ((start - isn_s - 1) & _M32) != 0:
            ok = False
        else:
            b0 = data[pb]
            if b0 == 0x50 or b0 == 0x0D:
                header = S[s, F_EXTRA] == 0 and S[s, F_HEADER] == 0
                ok = header
    return ok, header


@kernel_helper
def read_v1(data, pb, pn):
    """A clean "PROXY TCP4 a.b.c.d e.f.g.h sport dport\\r\\n" in the ``pn`` bytes at ``pb``:
    (1, 0, source, destination, ports, length), or a version of 0."""
    src = 0
    dst = 0
    sp = 0
    dp = 0
    q = 11
    good = pn >= 11
    for z in range(1, 11):
        if good and data[pb + z] != _V1HEAD[z]:
            good = False
    for part in range(10):  # ten numbers, each followed by its separator
        if not good:
            break
        maxd = 3 if part < 8 else 5
        c0 = data[pb + q] if q < pn else 0
        if c0 < 48 or c0 > 57:
            good = False
            break
        val = c0 - 48
        q += 1
        nd = 1
        while c0 != 48 and nd < maxd and q < pn:  # no leading zeros
            cd = data[pb + q]
            if cd < 48 or cd > 57:
                break
            val = val * 10 + cd - 48
            q += 1
            nd += 1
        if val > (255 if part < 8 else 65535) or q >= pn or data[pb + q] != _V1SEP[part]:
            good = False
            break
        q += 1
        if part < 4:
            src = src * 256 + val
        elif part < 8:
            dst = dst * 256 + val
        elif part == 8:
            sp = val
        else:
            dp = val
    hv = 0
    hlen = 0
    if good and q < pn and data[pb + q] == 10:
        hv = 1
        hlen = q + 1
    return hv, 0, src, dst, sp, dp, hlen


@kernel_helper
def read_v2(data, pb, pn):
    """A clean v2 header in the ``pn`` (>= 16) bytes at ``pb``: the signature, then PROXY
    INET (12 address bytes) or LOCAL, no TLVs: (2, family, source, destination, ports,
    length), or a version of 0."""
    sig = True
    for z in range(12):
        if data[pb + z] != _V2SIG[z]:
            sig = False
            break
    vc = data[pb + 12]
    fam = data[pb + 13] * 1
    ln = data[pb + 14] * 256 + data[pb + 15]
    hv = 0
    hlen = 0
    src = 0
    dst = 0
    sp = 0
    dp = 0
    if sig and vc == 0x20 and fam == 0 and ln == 0:
        hv = 2
        hlen = 16
    elif sig and vc == 0x21 and (fam == 0x11 or fam == 0x12) and ln == 12 and pn >= 28:
        hv = 2
        hlen = 28
        src = data[pb + 16] * 16777216 + data[pb + 17] * 65536 + data[pb + 18] * 256 + data[pb + 19]
        dst = data[pb + 20] * 16777216 + data[pb + 21] * 65536 + data[pb + 22] * 256 + data[pb + 23]
        sp = data[pb + 24] * 256 + data[pb + 25]
        dp = data[pb + 26] * 256 + data[pb + 27]
    return hv, fam, src, dst, sp, dp, hlen


@kernel_helper
def read_header(data, pb, pn):
    """A clean PROXY header at the start of the ``pn`` captured payload bytes at ``pb``,
    decided by this segment alone: data follows it and cannot start a second one (else
    Python reassembles, as Machine._direct does). (version (0: none), family, source,
    destination, source port, destination port, length)."""
    hv = fam = src = dst = sp = dp = hlen = 0
    if data[pb] == 0x50:
        hv, fam, src, dst, sp, dp, hlen = read_v1(data, pb, pn)
    elif pn >= 16:
        hv, fam, src, dst, sp, dp, hlen = read_v2(data, pb, pn)
    if hv != 0:
        nb = data[pb + hlen] if hlen < pn else 0x50
        if nb == 0x50 or nb == 0x0D:
            hv = 0
    return hv, fam, src, dst, sp, dp, hlen


@kernel_helper
def count_packet(S, s, size, tns):
    S[s, F_PACKETS] += 1
    S[s, F_BYTES] += size
    if tns < S[s, F_START]:
        S[s, F_START] = tns
    if tns > S[s, F_END]:
        S[s, F_END] = tns


@kernel_helper
def apply_syn(S, s, side, sq):
    """The first SYN: its sender is the egress; True when the flow became an attempt."""
    if S[s, F_SYN_SEQ] >= 0:
        return False
    S[s, F_SYN_SEQ] = sq
    S[s, F_ISN0 + side] = sq
    S[s, F_EGRESS] = side
    S[s, F_EGRESS_BY] = BY_SYN
    if S[s, F_HS] != HS_NONE:
        return False
    S[s, F_HS] = HS_PENDING
    return True


@kernel_helper
def apply_synack(S, s, side, sq, ak):
    """The first SYN-ACK; without a SYN seen, its receiver is the egress: True when the
    flow became an attempt."""
    if S[s, F_SYNACK] != 0:
        return False
    S[s, F_SYNACK] = 1
    S[s, F_ISN0 + side] = sq
    if S[s, F_SYN_SEQ] >= 0:
        return False
    S[s, F_EGRESS] = 1 - side
    S[s, F_EGRESS_BY] = BY_SYNACK
    S[s, F_ISN0 + 1 - side] = (ak - 1) & _M32
    if S[s, F_HS] != HS_NONE:
        return False
    S[s, F_HS] = HS_PENDING
    return True


@kernel_helper
def end_handshake(S, s, done, fr, capture, ol):
    """The egress's answer to the SYN-ACK: the handshake done (an ACK) or failed."""
    S[s, F_HS] = HS_DONE if done else HS_FAILED
    S[s, F_HS_FRAME] = fr
    S[s, F_HS_CAPTURE] = capture
    S[s, F_HS_OPT_LEN] = ol


@kernel_helper
def apply_toa(S, X, s, side, pure_syn, is_hs, toa, fr, capture):
    """Keep a clean TOA (kind, variant, port, IPv4) in the flow's SYN, handshake-ACK or
    data slot (the first of each); without an egress yet, its sender is the egress."""
    if S[s, F_EGRESS] < 0:
        S[s, F_EGRESS] = side
        S[s, F_EGRESS_BY] = BY_TOA
    g = -1
    if pure_syn:
        if X[s, TS_SET - XBASE] == 0:
            g = TS_SET - XBASE
    elif is_hs:
        g = TA_SET - XBASE
        S[s, F_HS_TOA] = 1
    elif X[s, TD_SET - XBASE] == 0:
        g = TD_SET - XBASE
    if g >= 0:
        kind, var, port, ip = toa
        X[s, g] = 1
        X[s, g + T_IP] = ip
        X[s, g + T_PORT] = port
        X[s, g + T_KIND] = kind
        X[s, g + T_LEN] = 8
        X[s, g + T_VAR] = var
        X[s, g + T_FRAME] = fr
        X[s, g + T_CAP] = capture


@kernel_helper
def keep_first_payload(S, P, s, side, data, pb, pn, fr, capture):
    """Keep where side ``side``'s first payload is and its first PAYLOAD_KEEP bytes."""
    if S[s, F_PAY0 + side] != 0:
        return
    S[s, F_PAY0 + side] = 1
    fp = FP0_FRAME + side * FP_WIDTH
    S[s, fp] = fr
    S[s, fp + (FP0_CAP - FP0_FRAME)] = capture
    keep = min(pn, PAYLOAD_KEEP)
    S[s, fp + (FP0_LEN - FP0_FRAME)] = keep
    for z in range(keep):
        P[s, side * PAYLOAD_KEEP + z] = data[pb + z]


@kernel_helper
def settle_without_header(S, s, side, out, ct):
    """A payload from the egress (or before one is known) on a flow whose header question
    is open, and that the loop applied: no PROXY header starts this stream."""
    eg = S[s, F_EGRESS]
    if S[s, F_SETTLED] == 0 and (eg < 0 or eg == side):
        S[s, F_SETTLED] = 1
        S[s, F_NO_HEADER] = 1
        push(out, ct, CT_SETTLED, OUT_SETTLED, s)


@kernel_helper
def settle_header(S, X, s, hdr, fr, capture, out, ct):
    """Settle the flow's header question with the clean header ``hdr`` (see read_header)."""
    hv, fam, src, dst, sp, dp, hlen = hdr
    S[s, F_SETTLED] = 1
    S[s, F_HEADER] = HDR_ROW
    X[s, HK_VER - XBASE] = hv
    X[s, HK_FAM - XBASE] = fam
    X[s, HK_SRC - XBASE] = src
    X[s, HK_DST - XBASE] = dst
    X[s, HK_SPORT - XBASE] = sp
    X[s, HK_DPORT - XBASE] = dp
    X[s, HK_LEN - XBASE] = hlen
    X[s, HK_FRAME - XBASE] = fr
    X[s, HK_CAP - XBASE] = capture
    push(out, ct, CT_SETTLED, OUT_SETTLED, s)


@kernel_helper
def apply_close(S, s, side, rst, fr, capture, out, ct):
    """A FIN or RST: note the first two, close the flow; its first close, and the one that
    closes it fully, schedule it for eviction."""
    nc = S[s, F_NCLOSES]
    if nc < 2:
        cb = C0_SIDE + nc * CLOSE_WIDTH
        S[s, cb] = side
        S[s, cb + (C0_RST - C0_SIDE)] = 1 if rst else 0
        S[s, cb + (C0_FRAME - C0_SIDE)] = fr
        S[s, cb + (C0_CAP - C0_SIDE)] = capture
        S[s, cb + (C0_P0 - C0_SIDE)] = S[s, F_PAY0]
        S[s, cb + (C0_P1 - C0_SIDE)] = S[s, F_PAY0 + 1]
        S[s, F_NCLOSES] = nc + 1
    fm = S[s, F_FIN_MASK]
    was_done = (fm & 4) != 0 or fm == 3
    fm = fm | (4 if rst else (1 if side == 0 else 2))
    S[s, F_FIN_MASK] = fm
    now_done = (fm & 4) != 0 or fm == 3
    if S[s, F_CLOSED] == 0:
        S[s, F_CLOSED] = 1
        co = ct[CT_CLOSES] + 1
        ct[CT_CLOSES] = co
        S[s, F_CLOSE_ORDER] = co
        push(out, ct, CT_EVENTS, OUT_EVENTS, s)
    elif now_done and not was_done:
        push(out, ct, CT_EVENTS, OUT_EVENTS, s)


@kernel(
    f"void(i8[::1], i8[::1], {_PK}, i8[::1], i8[:, ::1], i8[:, ::1], u1[:, ::1], i8[::1], "
    "i8[::1], i8[::1], Tuple((b1[::1], i8[::1])), i8, i8, i8[:, ::1], i8[::1])"
)
def track_tcp(todo, pidx, pk, kside, S, X, P, H, free, tmpl, toa, capture, stamp, out, ct):
    """Apply packets ``todo`` to the flow table (S, X, P, hash index H, free-row stack
    ``free``, new-row template ``tmpl``): ``pidx[k]`` is the batch row of packet ``k`` in
    the columns ``pk`` (PACKET_COLUMNS); ``kside[k]`` receives the side that sent it (0: the
    smaller (address, port) end). ``toa`` is (TOA-kind mask, kind -> variant the loop reads
    or -1); ``out`` (rows OUT_*) receives what Python must do next, ``ct`` the counts.

    A first segment that may start a PROXY header, on a flow without Python state, is
    applied except for the header question: it is listed in OUT_HK/OUT_HSLOT for Python
    to parse, and the flow's later packets in this call are handed over.
    """
    (src_hi, src_lo, dst_hi, dst_lo, sport, dport, tunnel, frame, ts, olen, flags, seq, ack,
     optf, optoff, optlen, caplen, foff, payoff, paylen, paycap, data) = pk  # fmt: skip
    every = ct[CT_EVERY_PACKET] != 0
    for t in range(len(todo)):
        k = todo[t]
        i = pidx[k]
        key, side = flow_key(
            src_hi[i], src_lo[i], dst_hi[i], dst_lo[i], sport[i] + 0, dport[i] + 0, tunnel[i]
        )
        kside[k] = side
        h = key_hash(key)
        s, pos = find_flow(S, H, h, key)
        if s >= 0 and S[s, F_MARK] == stamp:
            hand_over(out, ct, k, s, 0)  # an earlier packet of this flow was handed over
            continue
        f = flags[i]
        syn = (f & 2) != 0
        pure_syn = syn and (f & 16) == 0
        fr, tns, sq = frame[i], ts[i], seq[i]
        if s >= 0 and starts_anew(S, s, pure_syn, sq, tns, ct[CT_ATTEMPT_NS]):
            end_flow(S, s, out, ct)
            s = -1
        if s < 0:
            s = new_flow(S, free, tmpl, ct, h, key, side, fr, tns, capture)
            H[pos] = s + 1

        # ---- can this packet be applied here? (decided before anything changes)
        e1, isn_s, is_hs = syn_effect(S, s, side, pure_syn, syn, sq)
        ol = optlen[i]
        ocap = max(min(caplen[i] - optoff[i], ol), 0)
        hand = every or (is_hs and ol > 0 and ocap < ol)
        t_kind = t_port = t_ip = 0  # a clean TOA option the loop reads itself
        t_var = -1
        if not hand and (optf[i] & 1) != 0:
            o = foff[i] + optoff[i]
            t_kind, t_var, t_port, t_ip = toa_rule(S, X, s, side, e1, data, o, ocap, ol, toa)
            hand = t_var < 0
        toa_ok = t_var >= 0
        e2 = side if (toa_ok and e1 < 0) else e1
        pl = paylen[i]
        pb = foff[i] + payoff[i]
        header = False
        if not hand and pl > 0 and S[s, F_SETTLED] == 0 and (e2 < 0 or e2 == side):
            start = sq + (1 if syn else 0)
            ok, header = first_segment(S, s, side, e2, isn_s, start, data, pb, paycap[i] == pl)
            hand = not ok
        hv = h_fam = h_src = h_dst = h_sp = h_dp = h_len = 0  # a clean PROXY header
        if header:
            hv, h_fam, h_src, h_dst, h_sp, h_dp, h_len = read_header(data, pb, paycap[i])
            header = hv == 0
        if hand:
            S[s, F_MARK] = stamp
            hand_over(out, ct, k, s, 1)
            continue

        # ---- apply
        count_packet(S, s, olen[i], tns)
        attempt = False  # the flow became a connection attempt: schedule its attempt timeout
        if pure_syn:
            attempt = apply_syn(S, s, side, sq)
        elif syn:
            attempt = apply_synack(S, s, side, sq, ack[i])
        elif is_hs:
            end_handshake(S, s, (f & 16) != 0 and (f & 4) == 0, fr, capture, ol)
        if toa_ok:
            apply_toa(S, X, s, side, pure_syn, is_hs, (t_kind, t_var, t_port, t_ip), fr, capture)
        if pl > 0:
            keep_first_payload(S, P, s, side, data, pb, paycap[i], fr, capture)
            if hv != 0:
                hdr = (hv, h_fam, h_src, h_dst, h_sp, h_dp, h_len)
                settle_header(S, X, s, hdr, fr, capture, out, ct)
            elif header:
                S[s, F_MARK] = stamp
                ask_header(out, ct, k, s)
            else:
                settle_without_header(S, s, side, out, ct)
        if (f & 5) != 0:  # FIN or RST (one event per packet: it schedules any attempt too)
            apply_close(S, s, side, (f & 4) != 0, fr, capture, out, ct)
        elif attempt:
            push(out, ct, CT_EVENTS, OUT_EVENTS, s)


@kernel(
    "i8(i8[::1], i8, i8[:, ::1], i8[::1], i8[::1], i8[::1], i8[::1], i8, i8, i8, i8, i8[::1])"
)
def expire(
    ev,
    nev,
    S,
    hd,
    hslot,
    hser,
    hn,
    now,
    linger,
    evict_after,
    attempt,
    out,
):
    """Schedule flows ``ev[:nev]`` (closed, fully closed, or become a connection attempt
    since the last call) and return how many flows are due: closed in both directions (or
    reset) and quiet for ``linger`` ns, half-closed and quiet for ``evict_after`` ns, or a
    connection attempt (``pcapip.flows.attempts.deadline``: SYN or SYN-ACK seen, handshake
    not completed, no payload, not closed) quiet for ``attempt`` ns, as of capture time
    ``now``; their rows are listed in ``out`` and marked ended.

    A binary heap of (deadline, row, serial) ordered by deadline: a deadline is computed
    when scheduled and never later than the flow's real one (a flow's last packet only
    moves later; its delay only shrinks, and then it is scheduled again), so every due
    flow is found by popping only entries that are due, and an entry found early is
    scheduled again with its real deadline.
    """
    size = hn[0]
    nout = 0
    # phase 0: new entries; phase 1: pop due entries; phase 2: re-schedule early ones
    rs = 0  # re-scheduled entries, kept at the end of ``out`` (counted backwards)
    for phase in range(3):
        if phase == 1:
            while size > 0 and hd[0] < now:
                d = hd[0]
                s = hslot[0]
                ser = hser[0]
                # pop: move the last entry to the root and sift it down
                size -= 1
                ld = hd[size]
                ls = hslot[size]
                lser = hser[size]
                q = 0
                while True:
                    c = 2 * q + 1
                    if c >= size:
                        break
                    if c + 1 < size and hd[c + 1] < hd[c]:
                        c += 1
                    if hd[c] >= ld:
                        break
                    hd[q] = hd[c]
                    hslot[q] = hslot[c]
                    hser[q] = hser[c]
                    q = c
                if size > 0:
                    hd[q] = ld
                    hslot[q] = ls
                    hser[q] = lser
                if S[s, F_STATE] != ST_OPEN or S[s, F_SERIAL] != ser:
                    continue  # ended already (or the row holds another flow now)
                if S[s, F_CLOSED] != 0:
                    fm = S[s, F_FIN_MASK]
                    real = S[s, F_END] + (linger if ((fm & 4) != 0 or fm == 3) else evict_after)
                elif (
                    S[s, F_HS] != HS_DONE
                    and (S[s, F_SYN_SEQ] >= 0 or S[s, F_SYNACK] != 0)
                    and S[s, F_PAY0] == 0
                    and S[s, F_PAY0 + 1] == 0
                ):
                    real = S[s, F_END] + attempt
                else:
                    continue  # an attempt that became a connection: no deadline
                if real < now:
                    S[s, F_STATE] = ST_ENDED
                    out[nout] = s
                    nout += 1
                elif real > d:
                    rs += 1
                    out[out.shape[0] - rs] = s
            continue
        count = nev if phase == 0 else rs
        for e in range(count):
            s = ev[e] if phase == 0 else out[out.shape[0] - 1 - e]
            if S[s, F_STATE] != ST_OPEN:
                continue
            if S[s, F_CLOSED] != 0:
                fm = S[s, F_FIN_MASK]
                d = S[s, F_END] + (linger if ((fm & 4) != 0 or fm == 3) else evict_after)
            elif (
                S[s, F_HS] != HS_DONE
                and (S[s, F_SYN_SEQ] >= 0 or S[s, F_SYNACK] != 0)
                and S[s, F_PAY0] == 0
                and S[s, F_PAY0 + 1] == 0
            ):
                d = S[s, F_END] + attempt
            else:
                continue
            ser = S[s, F_SERIAL]
            # push: append and sift up
            q = size
            size += 1
            while q > 0:
                par = (q - 1) // 2
                if hd[par] <= d:
                    break
                hd[q] = hd[par]
                hslot[q] = hslot[par]
                hser[q] = hser[par]
                q = par
            hd[q] = d
            hslot[q] = s
            hser[q] = ser
    hn[0] = size
    return nout


@kernel("void(i8[::1], i8[:, ::1], i8[::1], i8)")
def unindex(H, S, rows, n):
    """Remove rows ``rows[:n]`` from the hash index (backward-shift deletion, so probe
    chains stay unbroken without tombstones); a row whose key now maps to another row
    (a newer connection on the same 4-tuple) is left alone."""
    hmask = H.shape[0] - 1
    for e in range(n):
        s = rows[e]
        pos = S[s, K_HASH] & hmask
        while H[pos] != 0 and H[pos] != s + 1:
            pos = (pos + 1) & hmask
        if H[pos] == 0:
            continue
        hole = pos
        H[hole] = 0
        j = hole
        while True:
            j = (j + 1) & hmask
            v = H[j]
            if v == 0:
                break
            home = S[v - 1, K_HASH] & hmask
            # the entry at j may move into the hole unless its home lies in (hole, j]
            stays = (hole < home <= j) if hole <= j else (hole < home or home <= j)
            if not stays:
                H[hole] = v
                H[j] = 0
                hole = j


@kernel("void(i8[::1], i8[:, ::1], i8[::1], i8)")
def reindex(H, S, rows, n):
    """Insert rows ``rows[:n]`` into an empty hash index (after it grew)."""
    hmask = H.shape[0] - 1
    for e in range(n):
        s = rows[e]
        pos = S[s, K_HASH] & hmask
        while H[pos] != 0:
            pos = (pos + 1) & hmask
        H[pos] = s + 1
