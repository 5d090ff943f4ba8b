"""``pcapip live -w FILE -b filesize:MB -b files:N -b duration:S``: a ring buffer of packets.

The last hours of packets, kept for when a ticket comes in, in bounded disk: dumpcap's ring
buffer options and file names (``FILE_00001_20261206171500.pcap``: a number, then the local
time the file was started), so ``pcapip analyze 'FILE_*'`` reads the ring in order as one
recording. Files are written from the batches the live loop analyses (nanosecond pcap), so
a file holds exactly the packets the analysis saw; the oldest file is deleted once more
than ``files`` exist.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from pcapip.errors import UsageError

PCAP_NS_MAGIC = 0xA1B23C4D
SNAPLEN = 262144


@dataclass(frozen=True)
class RingSpec:
    """When to start a new file and how many to keep (0: no limit)."""

    filesize: int = 0  # bytes
    duration: float = 0.0  # seconds of wall time
    files: int = 0

    @classmethod
    def parse(cls, items: tuple[str, ...]) -> RingSpec | None:
        """``-b`` values as dumpcap takes them: ``filesize:KB`` … here ``filesize:MB``,
        ``files:N``, ``duration:S``; None when none was given."""
        if not items:
            return None
        got: dict[str, float] = {}
        for item in items:
            key, _, value = item.partition(":")
            if key not in ("filesize", "files", "duration") or not value:
                raise UsageError(f"-b {item}: expected filesize:MB, files:N or duration:S")
            try:
                number = int(value) if key == "files" else float(value)
            except ValueError:
                raise UsageError(f"-b {item}: {value!r} is not a number") from None
            if number <= 0:
                raise UsageError(f"-b {item}: must be more than 0")
            got[key] = number
        if "filesize" not in got and "duration" not in got:
            raise UsageError("-b: a ring needs filesize:MB or duration:S to know when to rotate")
        return cls(int(got.get("filesize", 0) * 1_000_000), float(got.get("duration", 0.0)),
                   int(got.get("files", 0)))


class RingWriter:
    """Writes batches of frames into the ring's files (``base`` names them, as dumpcap)."""

    def __init__(self, base: str, spec: RingSpec) -> None:
        stem, ext = os.path.splitext(base)
        self.stem, self.ext = stem, ext or ".pcap"
        self.spec = spec
        self.number = 0
        self.names: list[str] = []
        self._out: IO[bytes] | None = None
        self._size = 0
        self._opened = 0.0
        self._linktype: int | None = None

    def write(self, batch: Any) -> None:
        """Append a FrameBatch, starting a new file when the current one is full or old."""
        if len(batch) == 0:
            return
        lt = int(batch.linktype[0])
        if self._out is None or self._due() or lt != self._linktype:
            self._rotate(lt)
        data = _records(batch)
        assert self._out is not None
        self._out.write(data)
        self._out.flush()
        self._size += len(data)

    def _due(self) -> bool:
        s = self.spec
        return bool(
            (s.filesize and self._size >= s.filesize)
            or (s.duration and time.monotonic() - self._opened >= s.duration)
        )

    def _rotate(self, linktype: int) -> None:
        self.close()
        self.number += 1
        name = f"{self.stem}_{self.number:05d}_{time.strftime('%Y%m%d%H%M%S')}{self.ext}"
        self._out = open(name, "wb")  # noqa: SIM115 (closed by close())
        header = struct.pack("<IHHiIII", PCAP_NS_MAGIC, 2, 4, 0, 0, SNAPLEN, linktype)
        self._out.write(header)
        self._size, self._opened, self._linktype = len(header), time.monotonic(), linktype
        self.names.append(name)
        while self.spec.files and len(self.names) > self.spec.files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.names.pop(0))

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def _records(batch: Any) -> bytes:
    """The batch's frames as pcap records (nanosecond timestamps), in one buffer."""
    n = len(batch)
    caplen = batch.caplen.astype(np.int64)
    head = np.empty((n, 4), dtype="<u4")
    head[:, 0] = batch.ts_ns // 1_000_000_000
    head[:, 1] = batch.ts_ns % 1_000_000_000
    head[:, 2] = caplen
    head[:, 3] = batch.origlen
    size = 16 * n + int(caplen.sum())
    out = np.empty(size, dtype=np.uint8)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(16 + caplen[:-1], out=starts[1:])
    rows = np.arange(16, dtype=np.int64)
    out[(starts[:, None] + rows).ravel()] = head.view(np.uint8).ravel()
    # frame bytes: the output position of every byte minus where it comes from
    shift = np.repeat(starts + 16 - batch.offset.astype(np.int64), caplen)
    dst = np.arange(size - 16 * n, dtype=np.int64)
    dst += np.repeat(np.arange(1, n + 1, dtype=np.int64) * 16, caplen)
    out[dst] = batch.data[dst - shift]
    return out.tobytes()
