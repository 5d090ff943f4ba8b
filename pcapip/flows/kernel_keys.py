"""The flow table's hash index: flow keys, their hash, lookup, and index upkeep.

A flow's key is its two endpoints in a fixed order (the smaller address and
port first), so both directions find one row, and the tunnel it was found in
(``pcapip.flows.tunnels``: two tenants are two connections); the index ``H`` is open
addressing with linear probing: an entry is the row number plus one (0: empty) in its
low 32 bits and the key hash's low 31 bits above them (:func:`entry`), so a probe that
meets another flow's entry rarely has to read that flow's row (in a SYN flood nearly
every lookup misses, and reading rows scattered over hundreds of MB cost more than the
rest of the loop), and removing an entry finds where the entries after it belong
without reading their rows either.
"""

from __future__ import annotations

from pcapip.sources.accel import kernel, kernel_helper
from pcapip.sources.kernel_bytes import M32
from pcapip.sources.kernel_hint import AHEAD, prefetch

from .layout import K_AHI, K_ALO, K_APORT, K_BHI, K_BLO, K_BPORT, K_HASH, K_TUN

_SIGN = -0x8000000000000000  # flips the sign bit: unsigned order as signed order
# flow-key hash multipliers: below 2**29, so three 32-bit parts times them sum below 2**63
_K1 = 0x19E3779B
_K2 = 0x1B873593
_K3 = 0x0CC9E2D5
_M31 = 0x7FFFFFFF  # the key hash's bits an index entry keeps (an index under 2**31 entries)
BIG_INDEX = 1 << 17  # index entries (1 MB) from which a lookup is likely to wait for memory


@kernel_helper
def flow_key(src_hi, src_lo, dst_hi, dst_lo, sport, dport, tunnel, i):
    """Packet ``i``'s flow key (A high, low, port, B high, low, port, tunnel), endpoint A
    the smaller (address, port) compared unsigned, and the side that sent (0: A)."""
    sh, sl, dh, dl = src_hi[i], src_lo[i], dst_hi[i], dst_lo[i]
    sp, dp, tun = sport[i] + 0, dport[i] + 0, tunnel[i]  # (+ 0: ports as int64)
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
    """The same hash as pcapip.flows.tcptable.row_hash; no product can overflow int64 (signed
    overflow is undefined behaviour for the compiler, and Python's ints do not wrap)."""
    ahi, alo, ap, bhi, blo, bp, tun = key
    fa = (ahi ^ (ahi >> 32) ^ alo ^ (alo >> 32) ^ tun) & M32
    fb = (bhi ^ (bhi >> 32) ^ blo ^ (blo >> 32)) & M32
    h = fa * _K1 + fb * _K2 + (ap + bp * 65536) * _K3
    return h ^ (h >> 29)


@kernel_helper
def hint_index(H, pk, todo, pidx, t):
    """Ask for the index entry the flow of packet ``todo[t]`` (``pidx``: its row in the
    packet columns ``pk``, kernel.PACKET_COLUMNS) will read, if there is one: in a flood
    nearly every key is new and its entry is a memory wait, which overlaps others this way.
    An index of fewer than BIG_INDEX entries stays in the cache: nothing to ask for."""
    if t < len(todo) and H.shape[0] >= BIG_INDEX:
        i = pidx[todo[t]]
        key, _ = flow_key(pk[0], pk[1], pk[2], pk[3], pk[4], pk[5], pk[6], i)
        prefetch(H, key_hash(key) & (H.shape[0] - 1))


@kernel_helper
def entry(h, s):
    """Row ``s``'s entry in the index for key hash ``h`` (below 2**63: an int64 in the
    pure twin too)."""
    return ((h & _M31) << 32) | (s + 1)


@kernel_helper
def store_key(S, s, h, key):
    """Write the key ``key`` and its hash ``h`` into row ``s`` (what find_flow compares)."""
    ahi, alo, ap, bhi, blo, bp, tun = key
    S[s, K_HASH] = h
    S[s, K_AHI] = ahi
    S[s, K_ALO] = alo
    S[s, K_APORT] = ap
    S[s, K_BHI] = bhi
    S[s, K_BLO] = blo
    S[s, K_BPORT] = bp
    S[s, K_TUN] = tun


@kernel_helper
def find_flow(S, H, h, key):
    """(the row holding ``key`` or -1, its position in the index ``H`` or the free
    position where it goes)."""
    ahi, alo, ap, bhi, blo, bp, tun = key
    hmask = H.shape[0] - 1
    pos = h & hmask
    tag = h & _M31
    s = -1
    while True:
        v = H[pos]
        if v == 0:
            break
        c = (v & M32) - 1
        if (
            (v >> 32) == tag
            and S[c, K_HASH] == h
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


@kernel("void(i8[::1], i8[:, ::1], i8[::1], i8)")
def unindex(H, S, rows, n):
    """Remove rows ``rows[:n]`` from the hash index (backward-shift deletion, so probe
    chains stay unbroken without tombstones); a row whose key now maps to another row
    (a newer connection on the same 4-tuple) is left alone."""
    hmask = H.shape[0] - 1
    for e in range(n):
        # rows ended long ago and their entries are memory waits: ask for a later row's
        # hash, and for the entry of the row whose hash was asked for before
        if e + 2 * AHEAD < n:
            prefetch(S[rows[e + 2 * AHEAD]], K_HASH)
        if e + AHEAD < n:
            prefetch(H, S[rows[e + AHEAD], K_HASH] & hmask)
        s = rows[e]
        pos = S[s, K_HASH] & hmask
        while H[pos] != 0 and (H[pos] & M32) != s + 1:
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
            home = (v >> 32) & hmask
            # the entry at j may move into the hole unless its home lies in (hole, j]
            stays = (hole < home <= j) if hole <= j else (hole < home or home <= j)
            if not stays:
                H[hole] = v
                H[j] = 0
                hole = j


@kernel("void(i8[::1], i8[::1])")
def rehash(old, H):
    """Move every entry of the index ``old`` into the larger, empty index ``H`` (after the
    table grew). An entry carries its key hash's low bits, so no row is read: a flood's
    half million open rows are scattered over hundreds of MB."""
    hmask = H.shape[0] - 1
    for e in range(old.size):
        v = old[e]
        if v != 0:
            pos = (v >> 32) & hmask
            while H[pos] != 0:
                pos = (pos + 1) & hmask
            H[pos] = v
