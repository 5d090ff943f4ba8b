"""The unit that flows from capture sources to the decoder: a batch of raw frames.

Frames stay in one contiguous buffer and are addressed by offset, so a batch of
65,536 frames costs one allocation, not 65,536 ``bytes`` objects.
"""

from __future__ import annotations

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

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    def frame_bytes(self, i: int) -> bytes:
        """Captured bytes of the i-th frame of the batch (0-based index)."""
        o = int(self.offset[i])
        return self.data[o : o + int(self.caplen[i])].tobytes()
