"""Record walks: find the frames in a buffer of capture-file bytes.

These loops are the floor of the whole pipeline (every record of a 5 GB file
passes through them), so they are kernels: plain Python that also compiles
under numba (see ``accel``). They only read and validate record framing; the
per-format headers (pcap file header, pcapng SHB/IDB) are parsed in Python by
the readers, which hand the kernels what they need as plain numbers/arrays.

Numbers are read in the file's byte order with ``kernel_bytes.u16``/``u32``
(helpers numba inlines; multiplications, not shifts: numba types
``uint8 << int`` as uint64, and uint64 meeting int64 becomes float64). Every
integer stays below 2**63 so CPython and numba agree.

Each walk returns ``(records, next_position, status, detail)``.
"""

from __future__ import annotations

from .accel import kernel
from .accel_helpers import kernel_helper
from .kernel_bytes import INT64_MAX, u16, u32
from .linktypes import LT_RECORD

# walk status codes
WALK_FULL = 0  # max_records frames produced; call again from next_position
WALK_NEED_MORE = 1  # the next record is not complete in the buffer
WALK_BAD_CAPLEN = 2  # pcap record header with an absurd captured length (detail: caplen)
WALK_CONTROL = 3  # pcapng SHB or IDB at next_position: the reader parses it
WALK_BAD_BLOCK_LEN = (
    4  # pcapng block total length < 12, not a multiple of 4, or absurd (detail: length)
)
WALK_BAD_TRAILER = 5  # pcapng trailing block length differs from the leading one (detail: trailer)
WALK_BAD_IFACE = 6  # packet block names an interface the section has not described (detail: id)
WALK_BAD_PKT_LEN = 7  # packet block's captured length does not fit in the block (detail: caplen)

_SECS_MAX = 9223372035  # seconds that still fit in int64 nanoseconds (with the fraction)

# pcapng timestamp conversion modes (per interface)
TS_DEC_MUL = 0  # decimal resolution 10^-r, r <= 9: ns = frac * (10^(9-r))
TS_DEC_DIV = 1  # decimal resolution 10^-r, r > 9: ns = frac // 10^(r-9)
TS_BIN = 2  # binary resolution 2^-s

BT_SHB = 0x0A0D0D0A
BT_IDB = 1
BT_PB = 2  # obsolete Packet Block
BT_SPB = 3
BT_EPB = 6
BT_SJE = 9  # systemd journal export block
BT_CB, BT_CB_NOCOPY = 0x0BAD, 0x40000BAD  # custom blocks
# where a frame's data starts in its block, counted from the block's first byte
EPB_DATA = 28  # (and the obsolete PB's)
SPB_DATA = 12
CB_DATA = 12  # after a custom block's enterprise number
SJE_DATA = 8
#: the same by block type, for reading one frame back from its block (the TUI)
DATA_AT = {
    BT_EPB: EPB_DATA, BT_PB: EPB_DATA, BT_SPB: SPB_DATA,
    BT_CB: CB_DATA, BT_CB_NOCOPY: CB_DATA, BT_SJE: SJE_DATA,
}  # fmt: skip


@kernel("UniTuple(i8, 4)(u1[::1], i8, i8, b1, i8, i8, i8, i8, UniTuple(i8[::1], 4))")
def walk_pcap(buf, pos, end, big, hdr_len, frac_mult, max_caplen, max_records, outs):
    """Walk classic pcap records from ``pos`` up to ``end``.

    ``hdr_len`` is 16 (24 for the Kuznetzov "modified" format, whose extra
    fields are ignored); ``frac_mult`` 1000 for microsecond files, 1 for
    nanosecond files. ``outs``: each frame's (data offset, captured length,
    original length, time in ns), ``max_records`` long.
    """
    out_off, out_caplen, out_origlen, out_ts = outs
    n = 0
    status = WALK_FULL
    detail = 0
    while n < max_records:
        if end - pos < hdr_len:
            status = WALK_NEED_MORE
            break
        sec = u32(buf, pos, big)
        frac = u32(buf, pos + 4, big)
        caplen = u32(buf, pos + 8, big)
        origlen = u32(buf, pos + 12, big)
        if caplen > max_caplen:
            status = WALK_BAD_CAPLEN
            detail = caplen
            break
        if end - pos - hdr_len < caplen:
            status = WALK_NEED_MORE
            break
        out_off[n] = pos + hdr_len
        out_caplen[n] = caplen
        out_origlen[n] = origlen
        out_ts[n] = sec * 1000000000 + frac * frac_mult
        n += 1
        pos += hdr_len + caplen
    return n, pos, status, detail


@kernel(
    "UniTuple(i8, 4)(u1[::1], i8, i8, b1, i8, "
    "Tuple((i4[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8[::1])), i8, i8, i8, "
    "Tuple((i8[::1], i8[::1], i8[::1], i8[::1], i4[::1], i4[::1], i8[::1])))"
)
def walk_pcapng(buf, pos, end, big, n_if, ifs, if_base, max_block, max_records, outs):
    """Walk pcapng blocks of one section from ``pos`` up to ``end``.

    Packet blocks (EPB, SPB, obsolete PB) become frames, and so do custom
    blocks and systemd journal entries, as frames of link type LT_RECORD (Wireshark
    numbers them as frames); blocks pcapip does not use (NRB, ISB, DSB, unknown)
    are validated and skipped; SHB
    and IDB stop the walk (``WALK_CONTROL``) so the reader can parse them and
    call again with the section's updated interface table.

    ``ifs`` is the section's interface table: interface ``k`` has link type
    ``lt[k]``, snap length ``snap[k]``, timestamp conversion ``(mode[k], a[k],
    b[k])`` (see ``TS_*``) and ``secoff[k]`` seconds of ``if_tsoffset``; its
    file-wide index is ``if_base + k``. ``outs``: each frame's (data offset,
    captured length, original length, time in ns, interface, link type, block
    offset), ``max_records`` long.
    """
    if_lt, if_snap, if_mode, if_a, if_b, if_secoff = ifs
    n = 0
    status = WALK_FULL
    detail = 0
    while n < max_records:
        status, detail, btype, blen = block_frame(buf, pos, end, big, max_block)
        if status != WALK_FULL:
            break
        if btype in (BT_EPB, BT_PB, BT_SPB):
            if blen < (16 if btype == BT_SPB else 32):
                status = WALK_BAD_BLOCK_LEN
                detail = blen
                break
            iface = 0 if btype == BT_SPB else block_iface(buf, pos, btype, big)
            if iface >= n_if:
                status = WALK_BAD_IFACE
                detail = iface
                break
            if btype == BT_SPB:
                caplen, origlen = spb_lengths(buf, pos, blen, big, if_snap[0])
                ns = 0
                data = pos + SPB_DATA
            else:
                caplen = u32(buf, pos + 20, big)
                if caplen > blen - 32:
                    status = WALK_BAD_PKT_LEN
                    detail = caplen
                    break
                origlen = u32(buf, pos + 24, big)
                data = pos + EPB_DATA
                hi, lo = u32(buf, pos + 12, big), u32(buf, pos + 16, big)
                ns = pcapng_ns(hi, lo, if_mode[iface], if_a[iface], if_b[iface], if_secoff[iface])
            put_frame(outs, n, (data, caplen, origlen, ns, if_base + iface, if_lt[iface], pos))
            n += 1
        elif btype in (BT_CB, BT_CB_NOCOPY, BT_SJE):
            # no packet, no interface, no time: the custom data after the enterprise number,
            # or the journal entry (the lengths tshark gives)
            at = SJE_DATA if btype == BT_SJE else CB_DATA
            size = max(blen - at - 4, 0)  # (a custom block too short for its number: empty)
            while btype == BT_SJE and size > 0 and buf[pos + at + size - 1] == 0:
                size -= 1  # (a journal entry is padded to 32 bits)
            put_frame(outs, n, (pos + at, size, size, 0, -1, LT_RECORD, pos))
            n += 1
        pos += blen
    return n, pos, status, detail


@kernel_helper
def put_frame(outs, n, frame):
    """Write frame ``n`` (data offset, captured length, original length, time in ns,
    interface, link type, block offset) into the walk's outputs."""
    off, caplen, origlen, ns, iface, lt, rec = frame
    out_off, out_caplen, out_origlen, out_ts, out_iface, out_lt, out_rec = outs
    out_off[n] = off
    out_caplen[n] = caplen
    out_origlen[n] = origlen
    out_ts[n] = ns
    out_iface[n] = iface
    out_lt[n] = lt
    out_rec[n] = rec


@kernel_helper
def block_frame(buf, pos, end, big, max_block):
    """``(status, detail, type, length)`` of the pcapng block at ``pos``: WALK_FULL when it
    is whole in the buffer with sound lengths and is not an SHB or IDB (those stop the
    walk: WALK_CONTROL, an SHB before its length is trusted, which may be byte-swapped)."""
    if end - pos < 8:
        return WALK_NEED_MORE, 0, 0, 0
    btype = u32(buf, pos, big)
    blen = u32(buf, pos + 4, big)
    if btype == BT_SHB:
        return WALK_CONTROL, 0, btype, blen
    if blen < 12 or (blen & 3) != 0 or blen > max_block:
        return WALK_BAD_BLOCK_LEN, blen, btype, blen
    if end - pos < blen:
        return WALK_NEED_MORE, 0, btype, blen
    trailer = u32(buf, pos + blen - 4, big)
    if trailer != blen:
        return WALK_BAD_TRAILER, trailer, btype, blen
    if btype == BT_IDB:
        return WALK_CONTROL, 0, btype, blen
    return WALK_FULL, 0, btype, blen


@kernel_helper
def block_iface(buf, pos, btype, big):
    """The interface an EPB (32 bits) or an obsolete PB (16 bits) names."""
    if btype == BT_EPB:
        return u32(buf, pos + 8, big)
    return u16(buf, pos + 8, big)


@kernel_helper
def spb_lengths(buf, pos, blen, big, snap):
    """A simple packet block's (captured, original) lengths: the block's room, never more
    than the original length or the interface's snap length."""
    origlen = u32(buf, pos + 8, big)
    caplen = blen - 16
    if origlen < caplen:
        caplen = origlen
    if 0 < snap < caplen:
        caplen = snap
    return caplen, origlen


@kernel_helper
def pcapng_ns(hi, lo, mode, a, b, secoff):
    """Timestamp ticks ``(hi, lo)`` of an interface with conversion ``(mode, a, b)`` (see
    ``TS_*``) and ``secoff`` seconds of if_tsoffset -> ns since the epoch, saturating
    instead of overflowing."""
    if hi < 2147483648:
        ts = (hi << 32) | lo
        if mode == TS_BIN:
            secs = ts >> a
            frac = ts - (secs << a)
        else:
            secs = ts // a
            frac = ts - secs * a
    else:  # 2**63 ticks or more (fine resolutions): halved first, as int64 holds no more
        half = (hi << 31) | (lo >> 1)
        bit = lo & 1
        if mode == TS_BIN:
            if a == 0:
                return INT64_MAX
            secs = half >> (a - 1)
            frac = ((half - (secs << (a - 1))) << 1) | bit
        else:
            q = half // a
            rem = 2 * (half - q * a) + bit
            secs = 2 * q + rem // a
            frac = rem - (rem // a) * a
    if mode == TS_BIN:
        fns = (frac * 1000000000) >> a if a <= 33 else ((frac >> (a - 33)) * 1000000000) >> 33
    else:
        fns = frac * b if mode == TS_DEC_MUL else frac // b
    secs += secoff
    if secs > _SECS_MAX:
        return INT64_MAX
    if secs < -_SECS_MAX:
        return -INT64_MAX
    return secs * 1000000000 + fns
