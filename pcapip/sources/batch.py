"""The unit that flows from capture sources to the decoder: a batch of raw frames.

Frames stay in one contiguous buffer and are addressed by offset, so a batch of
65,536 frames costs one allocation, not 65,536 ``bytes`` objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class FrameBatch:
    """Raw frames read from one capture, in file order.

    All arrays have one entry per frame. ``data[offset[i]:offset[i]+caplen[i]]``
    are the captured bytes of frame ``first_frame + i``.
    """

    data: np.ndarray  # uint8, the buffer the frames live in
    offset: np.ndarray  # int64, start of each frame in ``data``
    caplen: np.ndarray  # int64, captured length
    origlen: np.ndarray  # int64, length on the wire
    ts_ns: np.ndarray  # int64, nanoseconds since the Unix epoch (UTC)
    linktype: np.ndarray  # int32, DLT/LINKTYPE value of the frame's interface
    iface: np.ndarray  # int32, interface index (pcapng IDB order; 0 for pcap)
    file_offset: np.ndarray  # int64, byte offset of the frame's record header in the file
    first_frame: int  # 1-based number of the first frame in this batch
    # frame numbers, when not consecutive (frames taken out of a capture: ``take``)
    frames: np.ndarray | None = None

    @classmethod
    def of_frames(
        cls,
        frames: Sequence[bytes],
        *,
        ts_ns: Sequence[int] | None = None,
        linktype: int | Sequence[int] = 1,
        origlen: Sequence[int] | None = None,
    ) -> FrameBatch:
        """Frames given as bytes (a handful re-read for a view, a warm-up, a test) as one
        batch: numbered from 1, back to back in one buffer, each record's offset its frame's,
        timestamps 0 and lengths on the wire the captured ones unless given."""
        n = len(frames)
        caplen = np.fromiter(map(len, frames), dtype=np.int64, count=n)
        offset = np.zeros(n, dtype=np.int64)
        np.cumsum(caplen[:-1], out=offset[1:])
        times = np.zeros(n, dtype=np.int64) if ts_ns is None else np.asarray(ts_ns, dtype=np.int64)
        return cls(
            data=np.frombuffer(b"".join(frames), dtype=np.uint8).copy(),
            offset=offset,
            caplen=caplen,
            origlen=caplen.copy() if origlen is None else np.asarray(origlen, dtype=np.int64),
            ts_ns=times,
            linktype=np.broadcast_to(np.asarray(linktype, dtype=np.int32), (n,)).copy(),
            iface=np.zeros(n, dtype=np.int32),
            file_offset=offset.copy(),
            first_frame=1,
        )

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    def frame_bytes(self, i: int) -> bytes:
        """Captured bytes of the i-th frame of the batch (0-based index)."""
        o = int(self.offset[i])
        return self.data[o : o + int(self.caplen[i])].tobytes()

    def numbers(self) -> np.ndarray:
        """Each frame's 1-based number in its capture."""
        if self.frames is not None:
            return self.frames
        return np.arange(self.first_frame, self.first_frame + len(self), dtype=np.int64)

    def take(self, rows: np.ndarray) -> FrameBatch:
        """Frames ``rows`` (indices, in order) in a buffer of their own, numbers kept."""
        numbers = self.numbers()[rows]
        caplen = self.caplen[rows]
        off = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(caplen, out=off[1:])
        data = np.empty(int(off[-1]), dtype=np.uint8)
        for k, (a, n) in enumerate(zip(self.offset[rows].tolist(), caplen.tolist(), strict=True)):
            data[off[k] : off[k] + n] = self.data[a : a + n]
        return FrameBatch(
            data,
            off[:-1],
            caplen,
            self.origlen[rows],
            self.ts_ns[rows],
            self.linktype[rows],
            self.iface[rows],
            self.file_offset[rows],
            int(numbers[0]) if rows.size else self.first_frame,
            numbers,
        )
