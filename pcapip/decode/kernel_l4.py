"""Transport headers for the decode loop: TCP (with the option walk a receiving kernel
does) and UDP."""

from __future__ import annotations

from pcapip.sources.accel import kernel_helper
from pcapip.sources.kernel_bytes import be16, be32

from .columns import (
    OPT_AFTER_EOL,
    OPT_MSS,
    OPT_SACK,
    OPT_TIMESTAMP,
    OPT_TOA_CANDIDATE,
    OPT_WALK_BROKEN,
    ST_BAD_HEADER,
    ST_PAYLOAD_CUT,
    ST_TRUNCATED,
)


@kernel_helper
def option_walk(data, b, oo, oend, po, toa_mask):
    """Walk the TCP options from ``oo`` to ``oend`` (captured) of a header ending at
    ``po``, as a receiving kernel does: the OPT_* bits of what it finds."""
    of = 0
    j = oo
    while j < oend:
        k = data[b + j]
        if k == 0:  # EOL: the walk ends; anything non-zero after it is hidden
            of |= behind_eol(data, b, j + 1, oend, toa_mask)
            break
        if k == 1:
            j += 1
            continue
        if toa_mask[k]:
            of |= OPT_TOA_CANDIDATE
        if k == 2:
            of |= OPT_MSS
        elif k == 4 or k == 5:
            of |= OPT_SACK
        elif k == 8:
            of |= OPT_TIMESTAMP
        if j + 1 >= oend:
            if oend == po:  # kind in the last header byte, no room for a length
                of |= OPT_WALK_BROKEN
            break
        ln = data[b + j + 1]
        if ln < 2 or j + ln > po:
            of |= OPT_WALK_BROKEN | behind_broken(data, b, j + 1, oend, toa_mask)
            break
        j += ln
    return of


@kernel_helper
def behind_broken(data, b, m0, oend, toa_mask):
    """OPT_TOA_CANDIDATE if any byte after a broken option (from ``m0``) is a TOA kind: a
    TOA there is one receivers never see, which the dissector says (it finds the options
    a byte at a time; this only hands it the packet)."""
    for m in range(m0, oend):
        if toa_mask[data[b + m]]:
            return OPT_TOA_CANDIDATE
    return 0


@kernel_helper
def behind_eol(data, b, m0, oend, toa_mask):
    """The option bytes after an EOL (from ``m0``): OPT_AFTER_EOL if any is non-zero,
    OPT_TOA_CANDIDATE if a lenient walk finds a TOA kind there."""
    of = 0
    m = m0
    while m < oend:
        if data[b + m] != 0:
            of |= OPT_AFTER_EOL
            break
        m += 1
    m = m0
    while m < oend:
        k2 = data[b + m]
        if k2 == 0 or k2 == 1:
            m += 1
            continue
        if toa_mask[k2]:
            of |= OPT_TOA_CANDIDATE
        if m + 1 >= oend:
            break
        l2 = data[b + m + 1]
        if l2 < 2:
            break
        m += l2
    return of


@kernel_helper
def l4_ports(data, q, room):
    """The source and destination ports a TCP or UDP header at ``q`` starts with, when its
    ``room`` captured bytes hold them (else 0, 0)."""
    if room < 4:
        return 0, 0
    return be16(data, q), be16(data, q + 2)


@kernel_helper
def tcp_header(data, b, l4, cap, ipend, toa_mask):
    """The TCP header at ``l4``: (status, ports, flags, seq, ack, window, header length,
    options offset, length and OPT_* bits, payload offset, length and captured bytes)."""
    st = 0
    fl = 0
    sq = 0
    ak = 0
    wn = 0
    thl = 0
    oo = 0
    ol = 0
    of = 0
    po = 0
    pl = 0
    pc = 0
    q = b + l4
    sp, dp = l4_ports(data, q, cap - l4)
    if cap - l4 < 20:
        st = ST_TRUNCATED
    else:
        sq = be32(data, q + 4)
        ak = be32(data, q + 8)
        doff = data[q + 12] // 16
        fl = ((data[q + 12] & 1) * 256) | data[q + 13]
        wn = be16(data, q + 14)
        thl = doff * 4
        if doff < 5 or l4 + thl > ipend:
            st = ST_BAD_HEADER
        else:
            oo = l4 + 20
            ol = thl - 20
            po = l4 + thl
            pl = ipend - po
            of = option_walk(data, b, oo, min(po, cap), po, toa_mask)
            if cap < po:
                st = ST_TRUNCATED
            else:
                pc = min(cap - po, pl)
                if pc < pl:
                    st = ST_PAYLOAD_CUT
    return st, sp, dp, fl, sq, ak, wn, thl, oo, ol, of, po, pl, pc


@kernel_helper
def udp_header(data, b, l4, cap, ipend):
    """The UDP header at ``l4``: (status, ports, payload offset, length, captured bytes)."""
    st = 0
    po = 0
    pl = 0
    pc = 0
    q = b + l4
    sp, dp = l4_ports(data, q, cap - l4)
    if cap - l4 < 8:
        st = ST_TRUNCATED
    else:
        ulen = be16(data, q + 4)
        po = l4 + 8
        room = ipend - po
        if room < 0:
            st = ST_BAD_HEADER
            room = 0
        if ulen == 0:  # jumbogram: the IP length decides
            pl = room
        elif ulen < 8 or ulen - 8 > room:
            st = ST_BAD_HEADER
            pl = room
        else:
            pl = ulen - 8
        pc = max(min(cap - po, pl), 0)
        if pc < pl and st == 0:
            st = ST_PAYLOAD_CUT
    return st, sp, dp, po, pl, pc
