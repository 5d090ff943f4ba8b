"""Random access to a capture's frames, built while the capture is read once.

The detail pane needs the bytes of a flow's header packets and the list of
its packets. Reading a multi-GB capture again from the start for every flow
the user selects would take seconds each time, so while the loader reads the
capture it keeps, per frame, where its record starts in the file, its
lengths, link type, time and a hash of its (symmetric) 5-tuple: 34 bytes a
frame (its number is its position), written to a temporary file as it comes. A
flow's packets are then a vectorised scan of that file's hash column, and its
bytes a few ``pread`` calls. Compressed captures cannot be
read at an offset: for them the wanted frames are fetched with one
sequential pass.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pcapip.sources import walk as W

_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)
_K3 = np.uint64(0x165667B19E3779F9)
_V4_MAPPED = 0xFFFF_0000_0000


def flow_hash(
    proto: np.ndarray,
    a_hi: np.ndarray,
    a_lo: np.ndarray,
    a_port: np.ndarray,
    b_hi: np.ndarray,
    b_lo: np.ndarray,
    b_port: np.ndarray,
) -> np.ndarray:
    """A 64-bit key of a packet's 5-tuple that is the same in both directions.

    Built from the sum and the xor of the two ends (symmetric, and together they almost
    pin the pair down) in a few vectorised passes: it runs over every frame while the
    capture is read. It only picks candidates: the detail checks each frame's decoded
    addresses, so a collision costs a frame read, never a wrong packet.
    """
    u = np.uint64
    with np.errstate(over="ignore"):
        lo_a, lo_b = a_lo.astype(u, copy=False), b_lo.astype(u, copy=False)
        pa, pb = a_port.astype(u), b_port.astype(u)
        ports = ((pa + pb) << u(16)) ^ (pa ^ pb)
        h = (lo_a + lo_b) * _K1
        h ^= lo_a ^ lo_b
        h ^= (a_hi.astype(u, copy=False) ^ b_hi) * _K3
        h ^= (ports | (proto.astype(u) << u(40))) * _K2
        return h ^ (h >> u(29))


def ip_halves(text: str) -> tuple[int, int]:
    """IP text as the decoder's (hi, lo) halves (IPv4 stored IPv4-mapped)."""
    a = ipaddress.ip_address(text)
    if a.version == 4:
        return 0, _V4_MAPPED | int(a)
    v = int(a)
    return v >> 64, v & 0xFFFF_FFFF_FFFF_FFFF


def tuple_hash(transport: str, ip_a: str, port_a: int, ip_b: str, port_b: int) -> int:
    proto = 6 if transport == "tcp" else 17
    ah, al = ip_halves(ip_a)
    bh, bl = ip_halves(ip_b)
    u = np.uint64
    key = flow_hash(
        np.array([proto], u),
        np.array([ah], u),
        np.array([al], u),
        np.array([port_a], u),
        np.array([bh], u),
        np.array([bl], u),
        np.array([port_b], u),
    )
    return int(key[0])


@dataclass(frozen=True)
class Frame:
    """One captured frame: its number, bytes, link type and time."""

    number: int
    data: bytes
    linktype: int
    ts_ns: int
    origlen: int


#: the index's columns: name -> dtype (34 bytes a frame)
_COLUMNS = {
    "file_offset": np.int64,
    "caplen": np.uint32,
    "origlen": np.uint32,
    "linktype": np.uint16,
    "ts_ns": np.int64,
    "key": np.uint64,
}
#: frames of a column read at a time when scanning it
_SCAN = 1 << 18
#: frames gathered before they are written (4.5 MB: one write a column, not one a batch)
_WRITE = 1 << 17
#: the columns a FrameBatch holds as they are
_FROM_BATCH = ("file_offset", "caplen", "origlen", "linktype", "ts_ns")


class FrameIndex:
    """Where every frame of one capture file is, filled batch by batch by the loader.

    The columns go to an unnamed temporary file as they come (``pcapip``'s row spool,
    :class:`pcapip.flows.packed.DiskStore`), so a capture's length costs disk, not the
    UI's memory: 5M frames are 170 MB of index. Queries read the columns back a slice
    at a time.
    """

    def __init__(self, path: str, *, fmt: str = "pcap", seekable: bool = True) -> None:
        from pcapip.flows.packed import DiskStore

        self.path = path
        self.format = fmt  # "pcap" | "pcapng": how to find a record's data from its offset
        self.seekable = seekable
        self._lock = threading.Lock()  # the store is one file: one reader or writer at a time
        self._store = DiskStore()
        self.first_frame = 1
        self.count = 0
        # frames not written yet: filled in place batch by batch (no list of small arrays
        # to join), written and refilled when full
        self._buf = {name: np.empty(_WRITE, dtype=t) for name, t in _COLUMNS.items()}
        self._held = 0

    # ------------------------------------------------------------------ building
    def add(self, batch: Any, packets: Any) -> None:
        """Index one FrameBatch and its decoded Packets (same frames, same order)."""
        if batch.first_frame != self.count + 1:
            raise ValueError(
                f"frames must be indexed in order: got {batch.first_frame}, next is {self.count + 1}"
            )
        p = packets
        part = {name: getattr(batch, name) for name in _FROM_BATCH}
        part["key"] = flow_hash(p.proto, p.src_hi, p.src_lo, p.sport, p.dst_hi, p.dst_lo, p.dport)
        n = len(batch)
        with self._lock:
            done = 0
            while done < n:  # (a batch may fill the buffer and start the next)
                k = min(n - done, _WRITE - self._held)
                for name, buf in self._buf.items():
                    buf[self._held : self._held + k] = part[name][done : done + k]
                self._held += k
                done += k
                if self._held == _WRITE:
                    self._write()
            self.count += n

    def _write(self) -> None:
        """Write the frames gathered so far (with the lock held): one write a column."""
        for name, buf in self._buf.items():
            self._store.append(name, buf[: self._held])
        self._held = 0

    def _slice(self, name: str, lo: int, hi: int) -> np.ndarray:
        with self._lock:
            if self._held:
                self._write()
            if name not in self._store:
                return np.zeros(0, dtype=_COLUMNS[name])
            return self._store.slice(name, lo, hi)

    def _take(self, name: str, idx: np.ndarray) -> np.ndarray:
        """Items ``idx`` (sorted, in range) of a column: one read when they are close."""
        if not idx.size:
            return np.zeros(0, dtype=_COLUMNS[name])
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        if hi - lo <= max(4096, 64 * idx.size):
            return self._slice(name, lo, hi)[idx - lo]
        return np.concatenate([self._slice(name, i, i + 1) for i in idx.tolist()])

    # ------------------------------------------------------------------ queries
    def flow_frames(
        self,
        transport: str,
        ip_a: str,
        port_a: int,
        ip_b: str,
        port_b: int,
        start_ns: int,
        end_ns: int,
    ) -> np.ndarray:
        """Numbers of the frames whose 5-tuple hash matches, within [start, end] (candidates:
        the caller checks the decoded addresses, a hash can collide)."""
        key = np.uint64(tuple_hash(transport, ip_a, port_a, ip_b, port_b))
        hits = []
        for lo in range(0, self.count, _SCAN):
            cand = np.flatnonzero(self._slice("key", lo, lo + _SCAN) == key) + lo
            if cand.size:
                ts = self._take("ts_ns", cand)
                hits.append(cand[(ts >= start_ns) & (ts <= end_ns)])
        found = np.concatenate(hits) if hits else np.zeros(0, dtype=np.int64)
        return found.astype(np.int64) + 1  # frames are numbered from 1, in order

    def frames(self, numbers: Iterable[int]) -> dict[int, Frame]:
        """The frames with these 1-based numbers (those that exist)."""
        wanted = sorted({int(n) for n in numbers if 0 < int(n) <= self.count})
        if not wanted:
            return {}
        if not self.seekable:
            return self._scan(wanted)
        idx = np.array(wanted, dtype=np.int64) - 1
        c = {name: self._take(name, idx).tolist() for name in _COLUMNS if name != "key"}
        out: dict[int, Frame] = {}
        with open(self.path, "rb") as fh:
            fd = fh.fileno()
            for k, n in enumerate(wanted):
                off = c["file_offset"][k]
                head = os.pread(fd, 4, off)
                data_at = self._data_at(head)
                if data_at is None:
                    continue
                data = os.pread(fd, c["caplen"][k], off + data_at)
                out[n] = Frame(n, data, c["linktype"][k], c["ts_ns"][k], c["origlen"][k])
        return out

    def _data_at(self, head: bytes) -> int | None:
        if self.format == "pcap":
            return 16
        if len(head) < 4:
            return None
        for order in ("little", "big"):
            t = int.from_bytes(head, order)
            if t in W.DATA_AT:  # (where the walker found the frame's data in its block)
                return W.DATA_AT[t]
        return None

    def _scan(self, wanted: list[int]) -> dict[int, Frame]:
        from pcapip.errors import CaptureError
        from pcapip.sources import open_capture

        out: dict[int, Frame] = {}
        last = wanted[-1]
        want = set(wanted)
        with open_capture(self.path) as src:
            try:
                for batch in src:
                    first = batch.first_frame
                    for n in [w for w in want if first <= w < first + len(batch)]:
                        i = n - first
                        out[n] = Frame(
                            n,
                            batch.frame_bytes(i),
                            int(batch.linktype[i]),
                            int(batch.ts_ns[i]),
                            int(batch.origlen[i]),
                        )
                    if first + len(batch) > last:
                        break
            except CaptureError:
                pass  # frames before the damage were delivered
        return out
