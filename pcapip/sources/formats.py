"""What the capture formats share: walk results, damage reports, output arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .accel import BACKEND_COMPILED


class Damage(Exception):
    """The input is damaged at ``pos`` (an index into the current buffer).

    The capture driver turns it into a CaptureError naming the file, the frame
    number and the absolute byte offset.
    """

    def __init__(self, message: str, pos: int, *, cut: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        # the bytes end inside what is read at ``pos``: a symptom that a decompression error
        # explains, unlike damage in bytes that are there (a bad magic, a bad length)
        self.cut = cut


@dataclass(slots=True)
class Interface:
    """One capture interface: a pcapng IDB, or the single interface of a pcap file."""

    index: int  # file-wide index (pcapng: IDB order across all sections)
    linktype: int
    snaplen: int
    section: int = 0  # 0-based pcapng section number
    name: str | None = None
    description: str | None = None
    ts_resolution: str = "1e-6"  # human form of if_tsresol, e.g. "1e-9" or "2^-20"
    ts_offset: int = 0  # if_tsoffset seconds
    fcs_len: int | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class WalkResult:
    """Frames found by one walk call (arrays hold exactly ``n`` entries)."""

    n: int
    pos: int
    status: int
    detail: int
    offset: np.ndarray
    caplen: np.ndarray
    origlen: np.ndarray
    ts_ns: np.ndarray
    linktype: np.ndarray
    iface: np.ndarray
    record: np.ndarray  # record/block start, relative to the buffer


def alloc_outputs(backend: str, count: int, dtypes: tuple[type, ...]) -> list:
    """Output sequences for a kernel: numpy arrays when compiled, lists for the pure twin.

    Lists make the pure twin ~3x faster than element-wise numpy stores and are
    converted once per batch.
    """
    if backend == BACKEND_COMPILED:
        return [np.empty(count, dtype=dt) for dt in dtypes]
    return [[0] * count for _ in dtypes]


def take(seq, n: int, dtype: type) -> np.ndarray:
    """The first n entries of a kernel output as a numpy array of ``dtype``."""
    if isinstance(seq, np.ndarray):
        return seq[:n]
    return np.array(seq[:n], dtype=dtype)


def u16(data: bytes | memoryview, pos: int, big: bool) -> int:
    return int.from_bytes(data[pos : pos + 2], "big" if big else "little")


def u32(data: bytes | memoryview, pos: int, big: bool) -> int:
    return int.from_bytes(data[pos : pos + 4], "big" if big else "little")
