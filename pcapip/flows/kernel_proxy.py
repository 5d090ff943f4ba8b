"""A flow's first payload in the compiled loop: kept, and its PROXY header read when clean.

The loop settles a flow's header question itself for a first segment that
cannot start a PROXY header, or that holds a clean v1 TCP4 or v2 INET/LOCAL
header followed by data; any other first segment is parsed by Python
(``pcapip.flows.headers``).
"""

from __future__ import annotations

from pcapip.sources.accel import kernel_helper
from pcapip.sources.kernel_bytes import M32, be16, be32

from .kernel_out import CT_SETTLED, OUT_SETTLED, push
from .layout import (
    F_BUFFERING,
    F_EGRESS,
    F_EXTRA,
    F_HEADER,
    F_NO_HEADER,
    F_PAY0,
    F_SETTLED,
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
    PAYLOAD_KEEP,
    XBASE,
)

_V2SIG = (13, 10, 13, 10, 0, 13, 10, 81, 85, 73, 84, 10)
# v1 "PROXY TCP4 a.b.c.d e.f.g.h sport dport\r\n": its first 11 bytes, and the byte after
# each of the ten numbers
_V1HEAD = (80, 82, 79, 88, 89, 32, 84, 67, 80, 52, 32)
_V1SEP = (46, 46, 46, 32, 46, 46, 46, 32, 32, 13)


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
        if ((start - isn_s - 1) & M32) != 0:
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
    INET STREAM (12 address bytes) or LOCAL, no TLVs: (2, family, source, destination,
    ports, length), or a version of 0 (a DGRAM header in TCP is odd: the rules say so)."""
    sig = True
    for z in range(12):
        if data[pb + z] != _V2SIG[z]:
            sig = False
            break
    vc = data[pb + 12]
    fam = data[pb + 13] * 1
    ln = be16(data, pb + 14)
    hv = 0
    hlen = 0
    src = 0
    dst = 0
    sp = 0
    dp = 0
    if sig and vc == 0x20 and fam == 0 and ln == 0:
        hv = 2
        hlen = 16
    elif sig and vc == 0x21 and fam == 0x11 and ln == 12 and pn >= 28:
        hv = 2
        hlen = 28
        src = be32(data, pb + 16)
        dst = be32(data, pb + 20)
        sp = be16(data, pb + 24)
        dp = be16(data, pb + 26)
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
