"""Reassembly of the first bytes of a TCP stream, and nothing more.

A PROXY header sits at stream offset 0, so pcapip only ever needs a short
contiguous prefix of the proxy-to-origin stream. Segments arrive retransmitted,
out of order or overlapping; this keeps the contiguous prefix plus a few
segments waiting to fill a hole, capped at ``limit`` bytes of stream offset, so
a long connection costs at most ``limit`` bytes while its header question is
open and nothing once it is settled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEQ_MOD = 1 << 32
HALF = 1 << 31


def seq_offset(seq: int, base: int) -> int:
    """Signed distance from ``base`` to ``seq`` in 32-bit sequence space."""
    d = (seq - base) % SEQ_MOD
    return d - SEQ_MOD if d >= HALF else d


@dataclass(slots=True)
class Piece:
    """Which packet supplied stream bytes ``[start, end)`` of the prefix."""

    frame: int
    start: int
    end: int
    capture: int = 0


@dataclass(slots=True)
class StreamStart:
    """The contiguous start of one direction of a TCP stream.

    ``add`` takes a segment's stream offset (0 = first payload byte), its
    captured bytes and how many more bytes it had on the wire than were
    captured (snap length). Bytes the capture never held make a permanent hole:
    ``cut_at`` marks where the prefix can never grow past.
    """

    limit: int = 65_600
    prefix: bytearray = field(default_factory=bytearray)
    pieces: list[Piece] = field(default_factory=list)
    pending: list[tuple[int, bytes, int, int]] = field(
        default_factory=list
    )  # (off, data, frame, capture)
    pending_bytes: int = 0
    cut_at: int | None = None  # first stream offset that is known not to be captured
    conflict_frame: int | None = None  # a segment whose overlap disagreed with earlier bytes

    def add(self, off: int, data: bytes, frame: int, *, missing: int = 0, capture: int = 0) -> None:
        """Offer one segment; returns nothing, read ``prefix`` afterwards."""
        end_wire = off + len(data) + missing
        if missing and end_wire > 0:
            cut = max(off + len(data), 0)
            if self.cut_at is None or cut < self.cut_at:
                self.cut_at = cut
        if off < 0:  # bytes before the stream start (e.g. a SYN's sequence number)
            data = data[-off:] if -off < len(data) else b""
            off = 0
        if not data or off >= self.limit:
            return
        if off + len(data) > self.limit:
            data = data[: self.limit - off]
        have = len(self.prefix)
        if off > have:
            if self.pending_bytes + len(data) <= self.limit:
                self.pending.append((off, data, frame, capture))
                self.pending_bytes += len(data)
            return
        self._merge(off, data, frame, capture)
        self._drain()

    def _merge(self, off: int, data: bytes, frame: int, capture: int) -> None:
        have = len(self.prefix)
        overlap = have - off
        if overlap > 0:
            common = min(overlap, len(data))
            if self.prefix[off : off + common] != data[:common] and self.conflict_frame is None:
                self.conflict_frame = frame
            data = data[overlap:]
        if data:
            self.pieces.append(Piece(frame, have, have + len(data), capture))
            self.prefix += data

    def _drain(self) -> None:
        while self.pending:
            self.pending.sort(key=lambda p: p[0])
            off, data, frame, capture = self.pending[0]
            if off > len(self.prefix):
                return
            self.pending.pop(0)
            self.pending_bytes -= len(data)
            self._merge(off, data, frame, capture)

    @property
    def stuck(self) -> bool:
        """The prefix ends where the capture cut bytes off: it can never grow."""
        return self.cut_at is not None and len(self.prefix) >= self.cut_at

    @property
    def has_gap(self) -> bool:
        """Later bytes are held but the bytes before them never arrived."""
        return bool(self.pending)

    def frames_for(self, start: int, end: int) -> list[tuple[int, int]]:
        """(capture, frame) of the packets that supplied bytes ``[start, end)``, in stream order."""
        out: list[tuple[int, int]] = []
        for p in self.pieces:
            if p.end > start and p.start < end and (p.capture, p.frame) not in out:
                out.append((p.capture, p.frame))
        return out
