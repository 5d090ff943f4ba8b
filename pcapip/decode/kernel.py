"""The per-frame decode loop: link layer, IPv4/IPv6, TCP/UDP into columns.

One loop, written as plain Python over an indexable byte buffer and output
sequences, so that it runs unchanged in CPython (the fallback, and the fast
choice for small captures) and compiles under numba for large ones (see
``pcapip.sources.accel``). Byte composition is spelled out inline because a
compiled kernel can only call compiled functions, and uses multiplications
rather than shifts on bytes (numba types ``uint8 << int`` as uint64, which
mixed with int64 turns into float64).

Integer care: everything is computed in (at most 64-bit) non-negative ints;
the one place that can exceed 2**63 (an IPv6 address half) wraps to the same
bit pattern in numba as the Python int has, and both land in uint64 columns.
"""

from __future__ import annotations

from pcapip.sources.accel import kernel

from .columns import (
    OPT_AFTER_EOL,
    OPT_MSS,
    OPT_SACK,
    OPT_TIMESTAMP,
    OPT_TOA_CANDIDATE,
    OPT_WALK_BROKEN,
    ST_BAD_HEADER,
    ST_FRAGMENT,
    ST_NOT_IP,
    ST_NOT_TCP_UDP,
    ST_PAYLOAD_CUT,
    ST_TRUNCATED,
    ST_UNKNOWN_LINK,
)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
IPV4_MAPPED = 0xFFFF00000000
MAX_VLAN_TAGS = 8
MAX_EXT_HEADERS = 16
MAX_WIRE = 1 << 30


@kernel(
    "i8(u1[::1], i8[::1], i8[::1], i8[::1], i4[::1], b1[::1], i8, u2[::1], u1[::1], u1[::1], "
    "u1[::1], u8[::1], u8[::1], u8[::1], u8[::1], i4[::1], i4[::1], u2[::1], u2[::1], "
    "u2[::1], u4[::1], u4[::1], u2[::1], u1[::1], i4[::1], i4[::1], u1[::1], i4[::1], "
    "i4[::1], i4[::1], u2[::1])"
)
def decode_frames(
    data,
    foff,
    caplen,
    origlen,
    linktype,
    toa_mask,
    n,
    status,
    ipver,
    proto,
    ttl,
    src_hi,
    src_lo,
    dst_hi,
    dst_lo,
    ip_off,
    l4_off,
    sport,
    dport,
    tcp_flags,
    seq,
    ack,
    win,
    tcp_hlen,
    opt_off,
    opt_len,
    opt_flags,
    pay_off,
    pay_len,
    pay_cap,
    ethertype,
):
    """Decode frames 0..n-1 into the output columns (all offsets relative to the frame)."""
    for i in range(n):
        b = foff[i]
        cap = caplen[i]
        wire = origlen[i]
        if wire > MAX_WIRE:  # absurd record length: keep every derived length in int32
            wire = MAX_WIRE
        lt = linktype[i]
        st = 0
        ver = 0
        pr = 0
        hop = 0
        shi = 0
        slo = 0
        dhi = 0
        dlo = 0
        ipo = -1
        l4o = -1
        sp = 0
        dp = 0
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

        # ---------------- link layer -> ethertype ``et`` of the header at ``p``
        et = 0
        p = 0
        if lt == 1:  # Ethernet
            if cap < 14:
                st = ST_TRUNCATED
            else:
                et = (data[b + 12] * 256) | data[b + 13]
                p = 14
        elif lt == 113:  # Linux SLL: protocol type at 14
            if cap < 16:
                st = ST_TRUNCATED
            else:
                et = (data[b + 14] * 256) | data[b + 15]
                p = 16
        elif lt == 276:  # Linux SLL2: protocol type at 0, 20-byte header
            if cap < 20:
                st = ST_TRUNCATED
            else:
                et = (data[b] * 256) | data[b + 1]
                p = 20
        elif lt == 101 or lt == 12 or lt == 14 or lt == 228 or lt == 229:  # raw IP
            if cap < 1:
                st = ST_TRUNCATED
            else:
                v = data[b] // 16
                if v == 4 and lt != 229:
                    et = ETH_IPV4
                elif v == 6 and lt != 228:
                    et = ETH_IPV6
                else:
                    st = ST_BAD_HEADER
        elif lt == 0 or lt == 108:  # BSD null / OpenBSD loop: address family, either byte order
            if cap < 4:
                st = ST_TRUNCATED
            else:
                fam = (
                    (data[b + 3] * 16777216) | (data[b + 2] * 65536) | (data[b + 1] * 256) | data[b]
                )
                if fam > 0xFFFF:
                    fam = (
                        (data[b] * 16777216)
                        | (data[b + 1] * 65536)
                        | (data[b + 2] * 256)
                        | data[b + 3]
                    )
                p = 4
                if fam == 2:
                    et = ETH_IPV4
                elif fam == 24 or fam == 28 or fam == 30:
                    et = ETH_IPV6
                else:
                    st = ST_NOT_IP
        else:
            st = ST_UNKNOWN_LINK

        # 802.1Q / 802.1ad / legacy QinQ tags
        tags = 0
        while st == 0 and (et == 0x8100 or et == 0x88A8 or et == 0x9100 or et == 0x9200):
            if cap < p + 4 or tags >= MAX_VLAN_TAGS:
                st = ST_TRUNCATED if cap < p + 4 else ST_BAD_HEADER
                break
            et = (data[b + p + 2] * 256) | data[b + p + 3]
            p += 4
            tags += 1
        if st == 0 and et != ETH_IPV4 and et != ETH_IPV6:
            st = ST_NOT_IP

        # ---------------- network layer
        l4 = 0
        ipend = 0
        if st == 0:
            ipo = p
            q = b + p
            if et == ETH_IPV4:
                ver = 4
                if cap - p < 20:
                    st = ST_TRUNCATED
                else:
                    vihl = data[q]
                    ihl = (vihl & 15) * 4
                    tot = (data[q + 2] * 256) | data[q + 3]
                    frag = ((data[q + 6] * 256) | data[q + 7]) & 0x3FFF
                    hop = data[q + 8]
                    pr = data[q + 9]
                    slo = IPV4_MAPPED | (
                        (data[q + 12] * 16777216)
                        | (data[q + 13] * 65536)
                        | (data[q + 14] * 256)
                        | data[q + 15]
                    )
                    dlo = IPV4_MAPPED | (
                        (data[q + 16] * 16777216)
                        | (data[q + 17] * 65536)
                        | (data[q + 18] * 256)
                        | data[q + 19]
                    )
                    if tot == 0:  # segmentation offload: the length was never filled in
                        tot = wire - p
                    if (vihl // 16) != 4 or ihl < 20 or tot < ihl:
                        st = ST_BAD_HEADER
                    elif frag != 0:
                        st = ST_FRAGMENT
                    elif cap - p < ihl:
                        st = ST_TRUNCATED
                    else:
                        l4 = p + ihl
                        ipend = p + tot
            else:
                ver = 6
                if cap - p < 40:
                    st = ST_TRUNCATED
                else:
                    plen = (data[q + 4] * 256) | data[q + 5]
                    pr = data[q + 6]
                    hop = data[q + 7]
                    shi = (
                        (
                            (data[q + 8] * 16777216)
                            | (data[q + 9] * 65536)
                            | (data[q + 10] * 256)
                            | data[q + 11]
                        )
                        << 32
                    ) | (
                        (data[q + 12] * 16777216)
                        | (data[q + 13] * 65536)
                        | (data[q + 14] * 256)
                        | data[q + 15]
                    )
                    slo = (
                        (
                            (data[q + 16] * 16777216)
                            | (data[q + 17] * 65536)
                            | (data[q + 18] * 256)
                            | data[q + 19]
                        )
                        << 32
                    ) | (
                        (data[q + 20] * 16777216)
                        | (data[q + 21] * 65536)
                        | (data[q + 22] * 256)
                        | data[q + 23]
                    )
                    dhi = (
                        (
                            (data[q + 24] * 16777216)
                            | (data[q + 25] * 65536)
                            | (data[q + 26] * 256)
                            | data[q + 27]
                        )
                        << 32
                    ) | (
                        (data[q + 28] * 16777216)
                        | (data[q + 29] * 65536)
                        | (data[q + 30] * 256)
                        | data[q + 31]
                    )
                    dlo = (
                        (
                            (data[q + 32] * 16777216)
                            | (data[q + 33] * 65536)
                            | (data[q + 34] * 256)
                            | data[q + 35]
                        )
                        << 32
                    ) | (
                        (data[q + 36] * 16777216)
                        | (data[q + 37] * 65536)
                        | (data[q + 38] * 256)
                        | data[q + 39]
                    )
                    if (data[q] // 16) != 6:
                        st = ST_BAD_HEADER
                    else:
                        l4 = p + 40
                        # plen 0: jumbogram or segmentation offload, the frame length decides
                        ipend = l4 + plen if plen else max(wire, l4)
            # extension headers (IPv6) and AH (both families)
            nhdr = 0
            while st == 0:
                if pr == 0 or pr == 43 or pr == 60:  # hop-by-hop, routing, destination options
                    if ver != 6:
                        break
                    if cap < l4 + 2:
                        st = ST_TRUNCATED
                        break
                    nxt = data[b + l4]
                    l4 += (data[b + l4 + 1] + 1) * 8
                    pr = nxt
                elif pr == 51:  # authentication header
                    if cap < l4 + 2:
                        st = ST_TRUNCATED
                        break
                    nxt = data[b + l4]
                    l4 += (data[b + l4 + 1] + 2) * 4
                    pr = nxt
                elif pr == 44 and ver == 6:  # fragment header
                    if cap < l4 + 8:
                        st = ST_TRUNCATED
                        break
                    nxt = data[b + l4]
                    fo = (data[b + l4 + 2] * 256) | data[b + l4 + 3]
                    l4 += 8
                    pr = nxt
                    if (fo & 0xFFF9) != 0:  # offset or more-fragments: a real fragment
                        st = ST_FRAGMENT
                else:
                    break
                nhdr += 1
                if st == 0 and (nhdr > MAX_EXT_HEADERS or l4 > ipend):
                    st = ST_BAD_HEADER

        # ---------------- transport layer
        if st == 0:
            avail = cap - l4
            q = b + l4
            if pr == 6:
                l4o = l4
                if avail >= 4:
                    sp = (data[q] * 256) | data[q + 1]
                    dp = (data[q + 2] * 256) | data[q + 3]
                if avail < 20:
                    st = ST_TRUNCATED
                else:
                    sq = (
                        (data[q + 4] * 16777216)
                        | (data[q + 5] * 65536)
                        | (data[q + 6] * 256)
                        | data[q + 7]
                    )
                    ak = (
                        (data[q + 8] * 16777216)
                        | (data[q + 9] * 65536)
                        | (data[q + 10] * 256)
                        | data[q + 11]
                    )
                    doff = data[q + 12] // 16
                    fl = ((data[q + 12] & 1) * 256) | data[q + 13]
                    wn = (data[q + 14] * 256) | data[q + 15]
                    thl = doff * 4
                    if doff < 5 or l4 + thl > ipend:
                        st = ST_BAD_HEADER
                    else:
                        oo = l4 + 20
                        ol = thl - 20
                        po = l4 + thl
                        pl = ipend - po
                        oend = po
                        if cap < oend:
                            oend = cap
                        # option walk, as a receiving kernel does it
                        j = oo
                        while j < oend:
                            k = data[b + j]
                            if k == 0:  # EOL: the walk ends; anything non-zero after it is hidden
                                m = j + 1
                                while m < oend:
                                    if data[b + m] != 0:
                                        of |= OPT_AFTER_EOL
                                        break
                                    m += 1
                                # look for TOA kinds behind the EOL with a lenient walk
                                m = j + 1
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
                                of |= OPT_WALK_BROKEN
                                break
                            j += ln
                        if cap < po:
                            st = ST_TRUNCATED
                        else:
                            pc = cap - po
                            if pc > pl:
                                pc = pl
                            if pc < pl:
                                st = ST_PAYLOAD_CUT
            elif pr == 17:
                l4o = l4
                if avail >= 4:
                    sp = (data[q] * 256) | data[q + 1]
                    dp = (data[q + 2] * 256) | data[q + 3]
                if avail < 8:
                    st = ST_TRUNCATED
                else:
                    ulen = (data[q + 4] * 256) | data[q + 5]
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
                    pc = cap - po
                    if pc > pl:
                        pc = pl
                    if pc < 0:
                        pc = 0
                    if pc < pl and st == 0:
                        st = ST_PAYLOAD_CUT
            else:
                st = ST_NOT_TCP_UDP

        status[i] = st
        ipver[i] = ver
        proto[i] = pr
        ttl[i] = hop
        src_hi[i] = shi
        src_lo[i] = slo
        dst_hi[i] = dhi
        dst_lo[i] = dlo
        ip_off[i] = ipo
        l4_off[i] = l4o
        sport[i] = sp
        dport[i] = dp
        tcp_flags[i] = fl
        seq[i] = sq
        ack[i] = ak
        win[i] = wn
        tcp_hlen[i] = thl
        opt_off[i] = oo
        opt_len[i] = ol
        opt_flags[i] = of
        pay_off[i] = po
        pay_len[i] = pl
        pay_cap[i] = pc
        ethertype[i] = et
    return n
