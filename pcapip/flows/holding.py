"""Rows of ended flows, held until they are taken.

A tracker's memory should be its open connections: ended flows' rows are
packed into numpy columns (``pcapip.flows.packed``, one shared vocabulary),
and once more than SPILL_BYTES of them have gathered, every block moves to
an unnamed temporary file. A capture's length then costs disk, not memory.
"""

from __future__ import annotations

from pcapip.flows.packed import DiskStore, PackedRows, Vocab, spill
from pcapip.flows.rows import FlowRow

# rows of flows that needed Python, packed together once this many have ended
PACK_ROWS = 8192
# packed rows of ended flows held in memory before they move to temporary files: a capture's
# memory is its open connections plus at most this (bench/README.md)
SPILL_BYTES = 2 << 20


class Held:
    """The rows of ended flows not taken yet, in the order the flows ended."""

    def __init__(self) -> None:
        self.vocab = Vocab()  # every block's texts are codes of this one vocabulary
        self._blocks: list[PackedRows] = []
        self._rows: list[FlowRow] = []  # row lists wait here until a block's worth gathered
        self.bytes = 0  # bytes of packed rows in memory
        self._spool: PackedRows | None = None  # packed rows moved to temporary files

    @property
    def rows_on_disk(self) -> int:
        return len(self._spool) if self._spool is not None else 0

    def keep(self, part: PackedRows | list[FlowRow]) -> None:
        """Hold the rows of ended flows until they are taken, packed."""
        if isinstance(part, PackedRows):
            self._pack_rows()  # (kept in the order they ended)
            self._hold(part)
            return
        self._rows.extend(part)
        if len(self._rows) >= PACK_ROWS:
            self._pack_rows()

    def take_rows(self) -> list[FlowRow]:
        """Every held row, as FlowRows; the holder forgets them."""
        out: list[FlowRow] = []
        for part in self._blocks:
            out.extend(part.to_rows(self.vocab))
        out.extend(self._rows)
        self._forget()
        return out

    def take_blocks(self) -> list[PackedRows]:
        """Every held row, as the packed blocks they are held in; the holder forgets them."""
        self._pack_rows()
        out = self._blocks
        self._forget()
        return out

    def _forget(self) -> None:
        self._blocks = []
        self._rows = []
        self.bytes = 0
        self._spool = None

    def _pack_rows(self) -> None:
        if self._rows:
            self._hold(PackedRows.from_rows(self._rows, self.vocab))
            self._rows = []

    def _hold(self, part: PackedRows) -> None:
        """Keep a packed block; past SPILL_BYTES in memory, move every block to disk (the
        store keeps them in memory if its file cannot be written: ``pcapip.flows.store``)."""
        self._blocks.append(part)
        self.bytes += part.nbytes
        if self.bytes <= SPILL_BYTES:
            return
        if self._spool is None:
            self._spool = PackedRows(DiskStore())
        store = self._spool.cols
        assert isinstance(store, DiskStore)
        for p in self._blocks:
            if p is not self._spool:
                spill(store, p)
        self._blocks = [self._spool]
        self.bytes = 0
