"""pcapng files: sections of either byte order, several interfaces, EPB/SPB/PB.

Section header and interface description blocks are rare and carry the
state (byte order, link types, timestamp resolutions), so they are parsed
here in Python; packet blocks are walked by ``walk.walk_pcapng`` with the
current section's interface table. Interface ids in packet blocks are local
to their section; frames report a file-wide interface index (IDB order over
the whole file) so two sections never share an index.
"""

from __future__ import annotations

import numpy as np

from . import walk as w
from .formats import Damage, Interface, WalkResult, alloc_outputs, take, u16, u32

BOM_BIG = b"\x1a\x2b\x3c\x4d"
BOM_LITTLE = b"\x4d\x3c\x2b\x1a"
MAX_BLOCK_LEN = 64 * 1024 * 1024
MIN_SHB_LEN = 28
MIN_IDB_LEN = 20

# option codes
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_HARDWARE, SHB_OS, SHB_USERAPPL = 2, 3, 4
IF_NAME, IF_DESCRIPTION, IF_TSRESOL, IF_FCSLEN, IF_TSOFFSET = 2, 3, 9, 13, 14

BLOCK_NAMES = {
    w.BT_SHB: "section header block",
    w.BT_IDB: "interface description block",
    w.BT_PB: "packet block",
    w.BT_SPB: "simple packet block",
    4: "name resolution block",
    5: "interface statistics block",
    w.BT_EPB: "enhanced packet block",
    0x0A: "decryption secrets block",
    0x0BAD: "custom block",
    0x40000BAD: "custom block",
}


def block_name(btype: int) -> str:
    return BLOCK_NAMES.get(btype, f"block of type 0x{btype:08x}")


def parse_options(body: bytes, big: bool) -> tuple[list[tuple[int, bytes]], bool]:
    """Split an option list into (code, value) pairs; the flag is False if it overran its block."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i + 4 <= len(body):
        code, length = u16(body, i, big), u16(body, i + 2, big)
        if code == OPT_ENDOFOPT:
            return out, True
        if i + 4 + length > len(body):
            return out, False
        out.append((code, body[i + 4 : i + 4 + length]))
        i += 4 + ((length + 3) & ~3)
    return out, i == len(body)


def _text(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode("utf-8", "replace")


class _Section:
    # the interface tables the compiled walk reads, as arrays grown by doubling: a section
    # may declare 100,000 interfaces, and the walk stops at each (rebuilding the arrays
    # every time made such a capture quadratic)
    _DTYPES = (np.int32, np.int64, np.int64, np.int64, np.int64, np.int64)

    def __init__(self, number: int, big: bool, first_iface: int) -> None:
        self.number = number
        self.big = big
        self.first_iface = first_iface
        self.lt: list[int] = []
        self.snap: list[int] = []
        self.mode: list[int] = []
        self.a: list[int] = []
        self.b: list[int] = []
        self.secoff: list[int] = []
        self._arrays: list[np.ndarray] | None = None

    def add(self, linktype: int, snaplen: int, mode: int, a: int, b: int, secoff: int) -> None:
        row = (linktype, snaplen, mode, a, b, secoff)
        for column, value in zip((self.lt, self.snap, self.mode, self.a, self.b, self.secoff),
                                 row, strict=True):
            column.append(value)
        arrays = self._arrays
        if arrays is None:
            return
        n = len(self.lt)
        if n > arrays[0].size:
            self._arrays = arrays = [np.resize(x, max(16, 2 * x.size)) for x in arrays]
        for x, value in zip(arrays, row, strict=True):
            x[n - 1] = value

    def tables(self, compiled: bool) -> tuple:
        if not compiled:
            return (self.lt, self.snap, self.mode, self.a, self.b, self.secoff)
        n = len(self.lt)
        if self._arrays is None:
            self._arrays = [
                np.array(col + [0] * (max(16, n) - n), dtype=dt)
                for col, dt in zip((self.lt, self.snap, self.mode, self.a, self.b, self.secoff),
                                   self._DTYPES, strict=True)
            ]
        return tuple(x[:n] for x in self._arrays)


def ts_conversion(tsresol: int) -> tuple[int, int, int, str]:
    """(mode, a, b, label) for the walk's timestamp conversion of an ``if_tsresol`` byte."""
    if tsresol & 0x80:
        shift = min(tsresol & 0x7F, 62)
        return w.TS_BIN, shift, 0, f"2^-{tsresol & 0x7F}"
    exp = min(tsresol, 18)
    if exp <= 9:
        return w.TS_DEC_MUL, 10**exp, 10 ** (9 - exp), f"1e-{tsresol}"
    return w.TS_DEC_DIV, 10**exp, 10 ** (exp - 9), f"1e-{tsresol}"


class PcapngFormat:
    name = "pcapng"

    def __init__(self, magic: bytes) -> None:
        self.interfaces: list[Interface] = []
        self.sections: list[dict[str, str]] = []
        self.section: _Section | None = None
        # (message, absolute byte offset of the block it is about)
        self.warnings: list[tuple[str, int]] = []
        self.saw_spb = False
        self.started = False

    # --- control blocks -------------------------------------------------------------------
    def start(self, buf: np.ndarray, pos: int, end: int, eof: bool) -> int:
        new = self.control(buf, pos, end, eof)
        if new >= 0:
            self.started = True
        return new

    def control(self, buf: np.ndarray, pos: int, end: int, eof: bool) -> int:
        """Parse the SHB or IDB at ``pos``; return the position after it (-1: need more bytes)."""
        if end - pos < 12:
            if eof:
                raise Damage(self.truncation(buf, pos, end), pos, cut=True)
            return -1
        head = buf[pos : pos + 12].tobytes()
        if head[:4] == b"\x0a\x0d\x0d\x0a":
            return self._section_header(buf, pos, end, eof, head)
        return self._interface(buf, pos, end, eof, head)

    def _section_header(self, buf: np.ndarray, pos: int, end: int, eof: bool, head: bytes) -> int:
        """A section header block: its byte order, version and options start a section."""
        bom = head[8:12]
        if bom == BOM_BIG:
            big = True
        elif bom == BOM_LITTLE:
            big = False
        else:
            raise Damage(
                f"section header block has a bad byte-order magic 0x{bom.hex()} "
                "(expected 1a2b3c4d in either byte order)",
                pos,
            )
        blen = u32(head, 4, big)
        block = self._whole(buf, pos, end, eof, big, blen, MIN_SHB_LEN, "section header block")
        if block is None:
            return -1
        major, minor = u16(block, 12, big), u16(block, 14, big)
        if major != 1:
            raise Damage(f"unsupported pcapng version {major}.{minor}", pos)
        opts, _ = parse_options(block[24:-4], big)
        info = {"byte_order": "big" if big else "little", "version": f"{major}.{minor}"}
        names = {SHB_HARDWARE: "hardware", SHB_OS: "os", SHB_USERAPPL: "application"}
        for code, value in opts:
            if code in names:
                info[names[code]] = _text(value)
        self.sections.append(info)
        self.section = _Section(len(self.sections) - 1, big, len(self.interfaces))
        return pos + blen

    def _interface(self, buf: np.ndarray, pos: int, end: int, eof: bool, head: bytes) -> int:
        """An interface description block: link type, snap length, time resolution, name."""
        sec = self.section
        if sec is None:  # pragma: no cover - start() always parses an SHB first
            raise Damage("pcapng block before any section header", pos)
        big = sec.big
        btype, blen = u32(head, 0, big), u32(head, 4, big)
        if btype != w.BT_IDB:  # pragma: no cover - the walk stops only at SHB/IDB
            raise Damage(f"unexpected {block_name(btype)}", pos)
        what = "interface description block"
        block = self._whole(buf, pos, end, eof, big, blen, MIN_IDB_LEN, what)
        if block is None:
            return -1
        linktype, snaplen = u16(block, 8, big), u32(block, 12, big)
        opts, clean = parse_options(block[16:-4], big)
        iface = Interface(
            index=len(self.interfaces),
            linktype=linktype,
            snaplen=snaplen,
            section=sec.number,
        )
        tsresol = 6
        for code, value in opts:
            if code == IF_NAME:
                iface.name = _text(value)
            elif code == IF_DESCRIPTION:
                iface.description = _text(value)
            elif code == IF_TSRESOL and len(value) >= 1:
                tsresol = value[0]
            elif code == IF_TSOFFSET and len(value) >= 8:
                iface.ts_offset = int.from_bytes(value[:8], "big" if big else "little", signed=True)
            elif code == IF_FCSLEN and len(value) >= 1:
                iface.fcs_len = value[0]
        mode, a, b, label = ts_conversion(tsresol)
        iface.ts_resolution = label
        if not clean:
            self.warnings.append(
                (f"interface description block {iface.index} has malformed options (ignored)", pos)
            )
        if (tsresol & 0x7F) > (62 if tsresol & 0x80 else 18):
            self.warnings.append(
                (f"interface {iface.index} has an unusable if_tsresol {tsresol:#04x}", pos)
            )
        self.interfaces.append(iface)
        sec.add(linktype, snaplen, mode, a, b, iface.ts_offset)
        return pos + blen

    def _whole(
        self, buf: np.ndarray, pos: int, end: int, eof: bool, big: bool, blen: int, least: int,
        what: str,
    ) -> bytes | None:
        """The control block at ``pos`` (``what``, at least ``least`` bytes), its lengths
        checked; None when the buffer does not hold it yet."""
        if blen < least or blen % 4 or blen > MAX_BLOCK_LEN:
            raise Damage(f"bad block length {blen} in {what}", pos)
        if end - pos < blen:
            if eof:
                raise Damage(self.truncation(buf, pos, end), pos, cut=True)
            return None
        block = buf[pos : pos + blen].tobytes()
        self._check_trailer(block, big, pos)
        return block

    def _check_trailer(self, block: bytes, big: bool, pos: int) -> None:
        blen = len(block)
        trailer = u32(block, blen - 4, big)
        if trailer != blen:
            btype = u32(block, 0, big)
            raise Damage(
                f"{block_name(btype)} length {blen} does not match the length {trailer} at its end",
                pos,
            )

    # --- packet blocks ----------------------------------------------------------------------
    def walk(
        self, buf: np.ndarray, view, pos: int, end: int, backend: str, max_records: int
    ) -> WalkResult:
        sec = self.section
        assert sec is not None
        compiled = backend == "compiled"
        count = max(1, min(max_records, (end - pos) // 16 + 1))
        off, cap, orig, ts, ifc, lt, rec = alloc_outputs(
            backend, count, (np.int64, np.int64, np.int64, np.int64, np.int32, np.int32, np.int64)
        )
        n, npos, status, detail = w.walk_pcapng.run(
            backend,
            buf if compiled else view,
            pos,
            end,
            sec.big,
            len(sec.lt),
            sec.tables(compiled),
            sec.first_iface,
            MAX_BLOCK_LEN,
            count,
            (off, cap, orig, ts, ifc, lt, rec),
        )
        result = WalkResult(
            n=n,
            pos=npos,
            status=status,
            detail=detail,
            offset=take(off, n, np.int64),
            caplen=take(cap, n, np.int64),
            origlen=take(orig, n, np.int64),
            ts_ns=take(ts, n, np.int64),
            linktype=take(lt, n, np.int32),
            iface=take(ifc, n, np.int32),
            record=take(rec, n, np.int64),
        )
        if not self.saw_spb and n and not result.ts_ns.all():
            untimed = (result.ts_ns == 0) & (result.linktype != w.LT_RECORD)
            for r in result.record[untimed][:64].tolist():
                if u32(buf[r : r + 4].tobytes(), 0, sec.big) == w.BT_SPB:
                    self.saw_spb = True
                    break
        return result

    def needed(self, buf: np.ndarray, pos: int, end: int) -> int:
        if end - pos < 12:
            return 12
        head = buf[pos : pos + 12].tobytes()
        if head[:4] == b"\x0a\x0d\x0d\x0a":
            big = head[8:12] == BOM_BIG
        else:
            big = self.section.big if self.section else False
        return max(12, u32(head, 4, big))

    def describe(self, status: int, detail: int, buf: np.ndarray, pos: int) -> str:
        sec = self.section
        big = sec.big if sec else False
        head = buf[pos : pos + 8].tobytes()
        btype = u32(head, 0, big) if len(head) >= 4 else -1
        blen = u32(head, 4, big) if len(head) >= 8 else 0
        name = block_name(btype)
        if status == w.WALK_BAD_BLOCK_LEN:
            return (
                f"bad block length {detail} in {name} (a block length must be a multiple of 4, "
                f"at least {16 if btype == w.BT_SPB else 32 if btype in (w.BT_EPB, w.BT_PB) else 12} "
                f"and at most {MAX_BLOCK_LEN})"
            )
        if status == w.WALK_BAD_TRAILER:
            return f"{name} length {blen} does not match the length {detail} at its end"
        if status == w.WALK_BAD_IFACE:
            have = len(sec.lt) if sec else 0
            return (
                f"{name} refers to interface {detail}, but its section describes "
                f"{have} interface{'s' if have != 1 else ''}"
            )
        if status == w.WALK_BAD_PKT_LEN:
            return f"{name} announces {detail} captured bytes but holds only {blen - 32}"
        return f"unexpected block walk status {status}"

    def truncation(self, buf: np.ndarray, pos: int, end: int) -> str:
        left = end - pos
        if left < 8:
            return f"truncated block header: the file ends {left} bytes into it"
        head = buf[pos : pos + 12].tobytes()
        if head[:4] == b"\x0a\x0d\x0d\x0a" and len(head) >= 12:
            big = head[8:12] == BOM_BIG
        else:
            big = self.section.big if self.section else False
        btype, blen = u32(head, 0, big), u32(head, 4, big)
        return (
            f"truncated {block_name(btype)}: it is {blen} bytes long but the file ends after {left}"
        )
