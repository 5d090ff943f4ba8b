"""Classic libpcap files: microsecond and nanosecond magic, either byte order.

The 24-byte file header fixes byte order, timestamp resolution and link type
for the whole file; the record walk (``walk.walk_pcap``) does the rest.
"""

from __future__ import annotations

import numpy as np

from . import walk as w
from .formats import Damage, Interface, WalkResult, alloc_outputs, take, u16, u32

FILE_HEADER_LEN = 24
# libpcap refuses records above 256 KiB unless the file's snap length is larger;
# we allow the larger of the two but never more than 64 MiB.
MAX_STANDARD_CAPLEN = 262144
MAX_CAPLEN_CEILING = 64 * 1024 * 1024

# magic as it appears in the first four bytes -> (big endian, nanoseconds, record header length)
MAGICS: dict[bytes, tuple[bool, bool, int]] = {
    b"\xd4\xc3\xb2\xa1": (False, False, 16),
    b"\xa1\xb2\xc3\xd4": (True, False, 16),
    b"\x4d\x3c\xb2\xa1": (False, True, 16),
    b"\xa1\xb2\x3c\x4d": (True, True, 16),
    # Alexey Kuznetzov's "modified" pcap: 8 more bytes per record header (ifindex, protocol, type)
    b"\x34\xcd\xb2\xa1": (False, False, 24),
    b"\xa1\xb2\xcd\x34": (True, False, 24),
}


class PcapFormat:
    name = "pcap"

    def __init__(self, magic: bytes) -> None:
        self.big, self.nanosecond, self.hdr_len = MAGICS[magic[:4]]
        self.version = (0, 0)
        self.snaplen = 0
        self.linktype = 0
        self.fcs_len: int | None = None
        self.max_caplen = MAX_STANDARD_CAPLEN
        self.interfaces: list[Interface] = []
        self.started = False

    @property
    def ts_resolution(self) -> str:
        return "1e-9" if self.nanosecond else "1e-6"

    def start(self, buf: np.ndarray, pos: int, end: int, eof: bool) -> int:
        """Parse the file header; return where records start, -1 if more bytes are needed."""
        if end - pos < FILE_HEADER_LEN:
            if eof:
                raise Damage(
                    f"truncated pcap file header: {end - pos} of {FILE_HEADER_LEN} bytes",
                    pos,
                    cut=True,
                )
            return -1
        head = buf[pos : pos + FILE_HEADER_LEN].tobytes()
        major, minor = u16(head, 4, self.big), u16(head, 6, self.big)
        if major != 2:
            raise Damage(f"unsupported pcap version {major}.{minor} (only 2.x exists)", pos)
        self.version = (major, minor)
        self.snaplen = u32(head, 16, self.big)
        network = u32(head, 20, self.big)
        # low 16 bits: link type; bit 26 (F) says the top 4 bits hold the FCS length in 16-bit words
        self.linktype = network & 0xFFFF
        if network & (1 << 26):
            self.fcs_len = ((network >> 28) & 0xF) * 2
        self.max_caplen = max(MAX_STANDARD_CAPLEN, min(self.snaplen, MAX_CAPLEN_CEILING))
        self.interfaces = [
            Interface(
                index=0,
                linktype=self.linktype,
                snaplen=self.snaplen,
                ts_resolution=self.ts_resolution,
                fcs_len=self.fcs_len,
            )
        ]
        self.started = True
        return pos + FILE_HEADER_LEN

    def walk(
        self, buf: np.ndarray, view, pos: int, end: int, backend: str, max_records: int
    ) -> WalkResult:
        count = max(1, min(max_records, (end - pos) // self.hdr_len + 1))
        off, cap, orig, ts = alloc_outputs(backend, count, (np.int64,) * 4)
        data = buf if backend == "compiled" else view
        n, npos, status, detail = w.walk_pcap.run(
            backend,
            data,
            pos,
            end,
            self.big,
            self.hdr_len,
            1 if self.nanosecond else 1000,
            self.max_caplen,
            count,
            (off, cap, orig, ts),
        )
        offset = take(off, n, np.int64)
        return WalkResult(
            n=n,
            pos=npos,
            status=status,
            detail=detail,
            offset=offset,
            caplen=take(cap, n, np.int64),
            origlen=take(orig, n, np.int64),
            ts_ns=take(ts, n, np.int64),
            linktype=np.full(n, self.linktype, dtype=np.int32),
            iface=np.zeros(n, dtype=np.int32),
            record=offset - self.hdr_len,
        )

    def control(self, buf: np.ndarray, pos: int, end: int, eof: bool) -> int:  # pragma: no cover
        raise AssertionError("pcap files have no control records")

    def needed(self, buf: np.ndarray, pos: int, end: int) -> int:
        """Bytes the record at ``pos`` needs in the buffer (header only if not yet readable)."""
        if end - pos < self.hdr_len:
            return self.hdr_len
        return self.hdr_len + u32(buf[pos + 8 : pos + 12].tobytes(), 0, self.big)

    def describe(self, status: int, detail: int, buf: np.ndarray, pos: int) -> str:
        if status == w.WALK_BAD_CAPLEN:
            return (
                f"record header announces an absurd captured length of {detail} bytes "
                f"(at most {self.max_caplen} expected; the file is damaged here)"
            )
        return f"unexpected record walk status {status}"

    def truncation(self, buf: np.ndarray, pos: int, end: int) -> str:
        left = end - pos
        if left < self.hdr_len:
            return (
                f"truncated record header: the file ends {left} bytes into "
                f"the {self.hdr_len}-byte header"
            )
        caplen = u32(buf[pos + 8 : pos + 12].tobytes(), 0, self.big)
        return (
            f"truncated record: the header announces {caplen} captured bytes "
            f"but the file ends after {left - self.hdr_len}"
        )
