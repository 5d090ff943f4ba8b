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

Like the engine's loops (``pcapip.sources.accel``), each function is plain
Python over indexable sequences that also compiles with numba; byte values
are combined with multiplications (``pcapip.sources.kernel_bytes``) and every
integer is int64. The loop is here; the ``@kernel_helper`` functions it calls
(inlined by numba) are grouped by job: ``kernel_keys`` (flow keys and the hash
index), ``kernel_flow`` (a row's life: start, counters, handshake, close),
``kernel_toa`` (TOA options), ``kernel_proxy`` (the first payload and its PROXY
header), ``kernel_out`` (the counters and out matrix Python reads), and
``kernel_expire`` (timeouts).
"""

from __future__ import annotations

from pcapip.sources.accel import kernel
from pcapip.sources.kernel_bytes import M32 as _M32
from pcapip.sources.kernel_hint import AHEAD

from .kernel_expire import expire
from .kernel_flow import (
    apply_close,
    apply_syn,
    apply_synack,
    count_packet,
    end_flow,
    end_handshake,
    lost_start,
    new_flow,
    starts_anew,
    syn_effect,
)
from .kernel_keys import (
    _K1,
    _K2,
    _K3,
    entry,
    find_flow,
    flow_key,
    hint_index,
    key_hash,
    rehash,
    unindex,
)
from .kernel_out import (
    CT_ATTEMPT_NS,
    CT_CLOSES,
    CT_DEFER,
    CT_ENDED,
    CT_EVENTS,
    CT_EVERY_PACKET,
    CT_FREE_TOP,
    CT_HEADERS,
    CT_OPEN,
    CT_SERIAL,
    CT_SETTLED,
    N_COUNTERS,
    N_OUT,
    OUT_EVENTS,
    ask_header,
    hand_over,
    push,
)
from .kernel_plain import plain_rows
from .kernel_proxy import (
    first_segment,
    keep_first_payload,
    read_header,
    settle_header,
    settle_without_header,
)
from .kernel_toa import apply_toa, toa_rule
from .layout import F_MARK, F_SETTLED

# the packet columns track_tcp reads, in the order of its ``pk`` tuple (the four address
# halves as int64 views of the uint64 columns; the tunnel's key and its column's text as
# pcapip.flows.tunnels codes them), then the batch's bytes
#: the PACKET_COLUMNS the tracker computes per packet rather than the decoder
COMPUTED_COLUMNS = ("tunnel", "tunnel_text")
PACKET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("src_hi", "i8"),
    ("src_lo", "i8"),
    ("dst_hi", "i8"),
    ("dst_lo", "i8"),
    ("sport", "u2"),
    ("dport", "u2"),
    ("tunnel", "i8"),
    ("tunnel_text", "i8"),
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
# what the table (pcapip.flows.tcptable) reads from here: the loop, the kernels it runs
# beside it, the counter slots, and the row hash's constants (tcptable.row_hash)
__all__ = [
    "CT_ATTEMPT_NS",
    "CT_CLOSES",
    "CT_DEFER",
    "CT_ENDED",
    "CT_EVENTS",
    "CT_EVERY_PACKET",
    "CT_FREE_TOP",
    "CT_HEADERS",
    "CT_OPEN",
    "CT_SERIAL",
    "CT_SETTLED",
    "N_COUNTERS",
    "N_OUT",
    "PACKET_COLUMNS",
    "_K1",
    "_K2",
    "_K3",
    "_M32",
    "expire",
    "plain_rows",
    "rehash",
    "track_tcp",
    "unindex",
]
_PK = "Tuple((" + ", ".join(f"{t}[::1]" for _, t in PACKET_COLUMNS) + "))"


_TAB = "Tuple((i8[:, ::1], i8[:, ::1], u1[:, ::1], i8[::1], i8[::1], i8[::1]))"


@kernel(
    f"void(i8[::1], i8[::1], {_PK}, i8[::1], {_TAB}, Tuple((b1[::1], i8[::1])), i8, i8, "
    "i8[:, ::1], i8[::1])"
)
def track_tcp(todo, pidx, pk, kside, tab, toa, capture, stamp, out, ct):
    """Apply packets ``todo`` to the flow table ``tab`` (S, X, P, hash index H, free-row
    stack ``free``, new-row template ``tmpl``): ``pidx[k]`` is the batch row of packet ``k`` in
    the columns ``pk`` (PACKET_COLUMNS); ``kside[k]`` receives the side that sent it (0: the
    smaller (address, port) end). ``toa`` is (TOA-kind mask, kind -> variant the loop reads
    or -1); ``out`` (rows OUT_*) receives what Python must do next, ``ct`` the counts.

    A first segment that may start a PROXY header, on a flow without Python state, is
    applied except for the header question: it is listed in OUT_HK/OUT_HSLOT for Python
    to parse, and the flow's later packets in this call are handed over.
    """
    (src_hi, src_lo, dst_hi, dst_lo, sport, dport, tunnel, tunnel_text, frame, ts, olen, flags,
     seq, ack, optf, optoff, optlen, caplen, foff, payoff, paylen, paycap, data) = pk  # fmt: skip
    S, X, P, H, free, tmpl = tab
    every = ct[CT_EVERY_PACKET] != 0
    for t in range(len(todo)):
        hint_index(H, pk, todo, pidx, t + AHEAD)  # a flood's new keys miss the cache: ask ahead
        k = todo[t]
        i = pidx[k]
        key, side = flow_key(src_hi, src_lo, dst_hi, dst_lo, sport, dport, tunnel, i)
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
            s = new_flow(S, free, tmpl, ct, h, key, side, (fr, tns, capture, tunnel_text[i]))
            H[pos] = entry(h, s)

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
        pl, pb, header = paylen[i], foff[i] + payoff[i], False
        if not hand and pl > 0 and S[s, F_SETTLED] == 0 and (e2 < 0 or e2 == side):
            start = sq + (1 if syn else 0)
            ok, header = first_segment(S, s, side, e2, isn_s, start, data, pb, paycap[i] == pl)
            hand = not ok
        hand = hand or lost_start(S, s, side, e2, isn_s, sq, f, pl)
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
