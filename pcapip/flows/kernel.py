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

from pcapip.sources.accel import kernel

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
BUILT_FOR_LAYOUT = 2924137225
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
CT_EVERY_PACKET = 10  # (set by the caller; a test switch) non-zero: hand over every packet
N_COUNTERS = 11

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


@kernel(
    "void(i8[::1], i8, i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], u2[::1], u2[::1], "
    "i8[::1], i8[::1], i8[::1], i8[::1], u2[::1], u4[::1], u4[::1], u1[::1], i4[::1], "
    "i4[::1], i8[::1], i8[::1], i4[::1], i4[::1], i4[::1], u1[::1], i8, "
    "i8[:, ::1], i8[:, ::1], u1[:, ::1], i8[::1], i8[::1], i8[::1], i8, b1[::1], i8[::1], "
    "i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1])"
)
def track_tcp(
    todo,
    ntodo,
    pidx,
    src_hi,
    src_lo,
    dst_hi,
    dst_lo,
    sport,
    dport,
    kside,
    frame,
    ts,
    olen,
    flags,
    seq,
    ack,
    optf,
    optoff,
    optlen,
    caplen,
    foff,
    payoff,
    paylen,
    paycap,
    data,
    capture,
    S,
    X,
    P,
    H,
    free,
    tmpl,
    stamp,
    toa_mask,
    toa_var,
    out_k,
    out_slot,
    out_first,
    out_ended,
    out_settled,
    out_events,
    out_hk,
    out_hslot,
    ct,
):
    """Apply packets ``todo[:ntodo]`` to the flow table: ``pidx[k]`` is the batch row of
    packet ``k``; addresses are the int64 bit patterns of the uint64 halves. ``kside[k]``
    receives the side that sent packet ``k`` (0: the smaller (address, port) end).

    A first segment that may start a PROXY header, on a flow without Python
    state, is applied like any other packet except for the header question:
    it is listed in ``out_hk``/``out_hslot`` for Python to parse, and the
    flow's later packets in this call are handed over (they may depend on
    the answer).
    """
    hmask = H.shape[0] - 1
    for t in range(ntodo):
        k = todo[t]
        i = pidx[k]
        # ---- the flow key: endpoint A is the smaller (address, port), compared unsigned
        sh = src_hi[i]
        sl = src_lo[i]
        dh = dst_hi[i]
        dl = dst_lo[i]
        sp = sport[i] + 0
        dp = dport[i] + 0
        xs = sh ^ _SIGN
        xd = dh ^ _SIGN
        if xs != xd:
            src_first = xs < xd
        else:
            xs = sl ^ _SIGN
            xd = dl ^ _SIGN
            src_first = xs < xd if xs != xd else sp <= dp
        if src_first:
            ahi, alo, ap, bhi, blo, bp, side = sh, sl, sp, dh, dl, dp, 0
        else:
            ahi, alo, ap, bhi, blo, bp, side = dh, dl, dp, sh, sl, sp, 1
        kside[k] = side
        # the same hash as pcapip.flows.tracker.row_hash; no product can overflow int64 (signed
        # overflow is undefined behaviour for the compiler, and Python's ints do not wrap)
        fa = (ahi ^ (ahi >> 32) ^ alo ^ (alo >> 32)) & _M32
        fb = (bhi ^ (bhi >> 32) ^ blo ^ (blo >> 32)) & _M32
        h = fa * _K1 + fb * _K2 + (ap + bp * 65536) * _K3
        h = h ^ (h >> 29)
        # ---- find the flow
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
            ):
                s = c
                break
            pos = (pos + 1) & hmask
        if s >= 0 and S[s, F_MARK] == stamp:
            # an earlier packet of this flow was handed over: so are all later ones
            n = ct[CT_DEFER]
            out_k[n] = k
            out_slot[n] = s
            out_first[n] = 0
            ct[CT_DEFER] = n + 1
            continue
        f = flags[i]
        syn = (f & 2) != 0
        ackf = (f & 16) != 0
        rst = (f & 4) != 0
        fin = (f & 1) != 0
        pure_syn = syn and not ackf
        fr = frame[i]
        tns = ts[i]
        sq = seq[i]
        # ---- a new flow, or a SYN reusing the 4-tuple of a closed / different connection
        create = s < 0
        if not create and (
            (
                pure_syn
                and (S[s, F_CLOSED] != 0 or (S[s, F_SYN_SEQ] >= 0 and sq != S[s, F_SYN_SEQ]))
            )
            or (
                # an attempt quiet past its timeout is over, whenever eviction runs: the
                # packet starts a new flow (so batch boundaries never change the rows)
                S[s, F_CLOSED] == 0
                and S[s, F_HS] != HS_DONE
                and (S[s, F_SYN_SEQ] >= 0 or S[s, F_SYNACK] != 0)
                and S[s, F_PAY0] == 0
                and S[s, F_PAY0 + 1] == 0
                and S[s, F_END] + ct[CT_ATTEMPT_NS] < tns
            )
        ):
            S[s, F_STATE] = ST_ENDED
            n = ct[CT_ENDED]
            out_ended[n] = s
            ct[CT_ENDED] = n + 1
            ct[CT_OPEN] -= 1
            create = True
        if create:
            top = ct[CT_FREE_TOP] - 1
            s = free[top]
            ct[CT_FREE_TOP] = top
            S[s, :] = tmpl  # (row s of X is a zero row: rows are freed with X cleared)
            S[s, K_HASH] = h
            S[s, K_AHI] = ahi
            S[s, K_ALO] = alo
            S[s, K_APORT] = ap
            S[s, K_BHI] = bhi
            S[s, K_BLO] = blo
            S[s, K_BPORT] = bp
            ser = ct[CT_SERIAL] + 1
            ct[CT_SERIAL] = ser
            S[s, F_SERIAL] = ser
            S[s, F_CAPTURE] = capture
            S[s, F_FIRST_FRAME] = fr
            S[s, F_START] = tns
            S[s, F_END] = tns
            S[s, F_FIRST_SIDE] = side
            H[pos] = s + 1
            ct[CT_OPEN] += 1

        # ---- can this packet be applied here? (decided before anything changes)
        egress = S[s, F_EGRESS]
        hs = S[s, F_HS]
        syn_seq = S[s, F_SYN_SEQ]
        e1 = egress  # egress side after the SYN / SYN-ACK rules
        isn_s = S[s, F_ISN0 + side]  # this side's ISN after them
        is_hs = False
        if pure_syn:
            if syn_seq < 0:
                e1 = side
                isn_s = sq
        elif syn:
            if S[s, F_SYNACK] == 0:
                isn_s = sq
                if syn_seq < 0:
                    e1 = 1 - side
        elif hs == HS_PENDING and side == egress:
            is_hs = True
        ol = optlen[i]
        ocap = caplen[i] - optoff[i]
        if ocap > ol:
            ocap = ol
        if ocap < 0:
            ocap = 0
        hand = is_hs and ol > 0 and ocap < ol
        toa_ok = False
        t_ip = 0
        t_port = 0
        t_kind = 0
        t_var = -1
        if not hand and (optf[i] & 1) != 0:
            if S[s, F_EXTRA] != 0 or (e1 >= 0 and side != e1) or ocap < ol:
                hand = True
            else:
                # the one clean shape read here: a complete option walk with exactly one
                # TOA-kind option, a port+IPv4 client variant (pcapip.flows.fastparse.toa)
                o = foff[i] + optoff[i]
                j = 0
                found = -1
                clean = True
                while j < ocap:
                    kd = data[o + j]
                    if kd == 0:
                        for z in range(j + 1, ocap):
                            if data[o + z] != 0:
                                clean = False
                                break
                        break
                    if kd == 1:
                        j += 1
                        continue
                    if j + 1 >= ocap:
                        clean = False
                        break
                    ln = data[o + j + 1]
                    if ln < 2 or j + ln > ocap:
                        clean = False
                        break
                    if toa_mask[kd]:
                        if found >= 0:
                            clean = False
                            break
                        found = j
                    j += ln
                if clean and found >= 0:
                    b = o + found
                    t_kind = data[b] * 1
                    if data[b + 1] == 8:
                        t_var = toa_var[t_kind]
                    t_port = data[b + 2] * 256 + data[b + 3]
                    t_ip = (
                        data[b + 4] * 16777216
                        + data[b + 5] * 65536
                        + data[b + 6] * 256
                        + data[b + 7]
                    )
                    if t_var < 0 or t_port == 0 or t_ip == 0:
                        clean = False
                    elif t_kind == 253 or t_kind == 254:
                        exid = (
                            data[b + 2] * 16777216
                            + data[b + 3] * 65536
                            + data[b + 4] * 256
                            + data[b + 5]
                        )
                        if t_port == 0xF989 or exid == 0xE2D4C3D9:
                            clean = False
                else:
                    clean = False
                if not clean:
                    hand = True
                else:
                    # a TOA naming another client than the flow's current one needs a finding
                    cur = -1
                    if X[s, TA_SET - XBASE] != 0:
                        cur = TA_SET - XBASE
                    elif X[s, TS_SET - XBASE] != 0:
                        cur = TS_SET - XBASE
                    elif X[s, TD_SET - XBASE] != 0:
                        cur = TD_SET - XBASE
                    if cur >= 0 and (X[s, cur + T_IP] != t_ip or X[s, cur + T_PORT] != t_port):
                        hand = True
                    else:
                        toa_ok = True
        e2 = e1
        if toa_ok and e2 < 0:
            e2 = side
        pl = paylen[i]
        header = False
        hv = 0
        h_fam = 0
        h_src = 0
        h_dst = 0
        h_sp = 0
        h_dp = 0
        h_len = 0
        if not hand and pl > 0 and S[s, F_SETTLED] == 0 and (e2 < 0 or e2 == side):
            # the only stream starts settled here: one in-order segment that cannot begin a
            # PROXY header (pcapip.flows.headers.parse rules it out by its first byte), or
            # that holds a clean header (the shapes of pcapip.flows.fastparse.proxy) followed
            # by data that cannot start another; any other first segment on a flow without
            # Python state is parsed by Python, on the segment alone when that decides
            ok = S[s, F_BUFFERING] == 0 and e2 == side and isn_s >= 0 and paycap[i] == pl
            if ok:
                synlen = 1 if syn else 0
                if ((sq + synlen - isn_s - 1) & _M32) != 0:
                    ok = False
                else:
                    b0 = data[foff[i] + payoff[i]]
                    if b0 == 0x50 or b0 == 0x0D:
                        header = S[s, F_EXTRA] == 0 and S[s, F_HEADER] == 0
                        ok = header
            hand = not ok
        if header:
            pb = foff[i] + payoff[i]
            pn = paycap[i]
            if data[pb] == 0x50:
                # v1: "PROXY TCP4 " then ten numbers, each followed by its separator
                q = 11
                good = pn >= 11
                for z in range(1, 11):
                    if good and data[pb + z] != _V1HEAD[z]:
                        good = False
                for part in range(10):
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
                    if (
                        val > (255 if part < 8 else 65535)
                        or q >= pn
                        or data[pb + q] != _V1SEP[part]
                    ):
                        good = False
                        break
                    q += 1
                    if part < 4:
                        h_src = h_src * 256 + val
                    elif part < 8:
                        h_dst = h_dst * 256 + val
                    elif part == 8:
                        h_sp = val
                    else:
                        h_dp = val
                if good and q < pn and data[pb + q] == 10:
                    hv = 1
                    h_len = q + 1
            elif pn >= 16:
                # v2: the signature, then PROXY INET (12 address bytes) or LOCAL, no TLVs
                sig = True
                for z in range(12):
                    if data[pb + z] != _V2SIG[z]:
                        sig = False
                        break
                vc = data[pb + 12]
                h_fam = data[pb + 13] * 1
                ln = data[pb + 14] * 256 + data[pb + 15]
                if sig and vc == 0x20 and h_fam == 0 and ln == 0:
                    hv = 2
                    h_len = 16
                elif (
                    sig
                    and vc == 0x21
                    and (h_fam == 0x11 or h_fam == 0x12)
                    and ln == 12
                    and pn >= 28
                ):
                    hv = 2
                    h_len = 28
                    h_src = (
                        data[pb + 16] * 16777216
                        + data[pb + 17] * 65536
                        + data[pb + 18] * 256
                        + data[pb + 19]
                    )
                    h_dst = (
                        data[pb + 20] * 16777216
                        + data[pb + 21] * 65536
                        + data[pb + 22] * 256
                        + data[pb + 23]
                    )
                    h_sp = data[pb + 24] * 256 + data[pb + 25]
                    h_dp = data[pb + 26] * 256 + data[pb + 27]
            if hv != 0:
                # decided by this segment alone: data follows the header and cannot start
                # a second one (else Python reassembles, as Machine._direct does)
                nb = data[pb + h_len] if h_len < pn else 0x50
                if nb == 0x50 or nb == 0x0D:
                    hv = 0
            header = hv == 0
        if hand or ct[CT_EVERY_PACKET] != 0:
            S[s, F_MARK] = stamp
            n = ct[CT_DEFER]
            out_k[n] = k
            out_slot[n] = s
            out_first[n] = 1
            ct[CT_DEFER] = n + 1
            continue

        # ---- apply
        attempt = False  # the flow became a connection attempt: schedule its attempt timeout
        S[s, F_PACKETS] += 1
        S[s, F_BYTES] += olen[i]
        if tns < S[s, F_START]:
            S[s, F_START] = tns
        if tns > S[s, F_END]:
            S[s, F_END] = tns
        if pure_syn:
            if syn_seq < 0:
                S[s, F_SYN_SEQ] = sq
                S[s, F_ISN0 + side] = sq
                S[s, F_EGRESS] = side
                S[s, F_EGRESS_BY] = BY_SYN
                if hs == HS_NONE:
                    S[s, F_HS] = HS_PENDING
                    attempt = True
        elif syn:
            if S[s, F_SYNACK] == 0:
                S[s, F_SYNACK] = 1
                S[s, F_ISN0 + side] = sq
                if syn_seq < 0:
                    S[s, F_EGRESS] = 1 - side
                    S[s, F_EGRESS_BY] = BY_SYNACK
                    S[s, F_ISN0 + 1 - side] = (ack[i] - 1) & _M32
                    if hs == HS_NONE:
                        S[s, F_HS] = HS_PENDING
                        attempt = True
        elif is_hs:
            S[s, F_HS] = HS_DONE if (ackf and not rst) else HS_FAILED
            S[s, F_HS_FRAME] = fr
            S[s, F_HS_CAPTURE] = capture
            S[s, F_HS_OPT_LEN] = ol
        if toa_ok:
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
                X[s, g] = 1
                X[s, g + T_IP] = t_ip
                X[s, g + T_PORT] = t_port
                X[s, g + T_KIND] = t_kind
                X[s, g + T_LEN] = 8
                X[s, g + T_VAR] = t_var
                X[s, g + T_FRAME] = fr
                X[s, g + T_CAP] = capture
        if pl > 0:
            if S[s, F_PAY0 + side] == 0:
                S[s, F_PAY0 + side] = 1
                fp = FP0_FRAME + side * FP_WIDTH
                S[s, fp] = fr
                S[s, fp + (FP0_CAP - FP0_FRAME)] = capture
                keep = paycap[i]
                if keep > PAYLOAD_KEEP:
                    keep = PAYLOAD_KEEP
                S[s, fp + (FP0_LEN - FP0_FRAME)] = keep
                src = foff[i] + payoff[i]
                for z in range(keep):
                    P[s, side * PAYLOAD_KEEP + z] = data[src + z]
            eg = S[s, F_EGRESS]
            if hv != 0:
                S[s, F_SETTLED] = 1
                S[s, F_HEADER] = HDR_ROW
                X[s, HK_VER - XBASE] = hv
                X[s, HK_FAM - XBASE] = h_fam
                X[s, HK_SRC - XBASE] = h_src
                X[s, HK_DST - XBASE] = h_dst
                X[s, HK_SPORT - XBASE] = h_sp
                X[s, HK_DPORT - XBASE] = h_dp
                X[s, HK_LEN - XBASE] = h_len
                X[s, HK_FRAME - XBASE] = fr
                X[s, HK_CAP - XBASE] = capture
                n = ct[CT_SETTLED]
                out_settled[n] = s
                ct[CT_SETTLED] = n + 1
            elif header:
                S[s, F_MARK] = stamp
                n = ct[CT_HEADERS]
                out_hk[n] = k
                out_hslot[n] = s
                ct[CT_HEADERS] = n + 1
            elif S[s, F_SETTLED] == 0 and (eg < 0 or eg == side):
                S[s, F_SETTLED] = 1
                S[s, F_NO_HEADER] = 1
                n = ct[CT_SETTLED]
                out_settled[n] = s
                ct[CT_SETTLED] = n + 1
        if fin or rst:
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
                n = ct[CT_EVENTS]
                out_events[n] = s
                ct[CT_EVENTS] = n + 1
            elif now_done and not was_done:
                n = ct[CT_EVENTS]
                out_events[n] = s
                ct[CT_EVENTS] = n + 1
        elif attempt:
            # (a FIN/RST in the same packet schedules the flow above: one event per packet)
            n = ct[CT_EVENTS]
            out_events[n] = s
            ct[CT_EVENTS] = n + 1


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
