"""A block of flow rows as parallel lists: how the row builders hand ended flows to the
packed store, and how the packed store gives them back (its own room, so neither imports
the other)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from pcapip.flows.findings import Finding
from pcapip.flows.rows import FlowRow

ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(FlowRow) if f.name != "findings")


class RowBlock:
    """Rows as parallel lists (one per FlowRow field), findings as parallel lists too.

    ``f_row[k]`` is the position in this block of the row finding ``k`` belongs
    to; a row's findings appear in the order the row would list them.
    """

    __slots__ = ("cols", "f_row", "f_code", "f_msg", "f_frame", "f_capture")

    def __init__(self, cols: dict[str, list[Any]] | None = None) -> None:
        self.cols: dict[str, list[Any]] = cols if cols is not None else {n: [] for n in ROW_FIELDS}
        self.f_row: list[int] = []
        self.f_code: list[str] = []
        self.f_msg: list[str] = []
        self.f_frame: list[int | None] = []
        self.f_capture: list[int] = []

    def __len__(self) -> int:
        return len(self.cols["capture"])

    def add_finding(self, row: int, code: str, msg: str, frame: int | None, capture: int) -> None:
        self.f_row.append(row)
        self.f_code.append(code)
        self.f_msg.append(msg)
        self.f_frame.append(frame)
        self.f_capture.append(capture)

    @classmethod
    def from_rows(cls, rows: Sequence[FlowRow]) -> RowBlock:
        b = cls({n: [getattr(r, n) for r in rows] for n in ROW_FIELDS})
        for k, r in enumerate(rows):
            for f in r.findings:
                b.add_finding(k, f.code, f.message, f.frame, f.capture)
        return b

    def to_rows(self) -> list[FlowRow]:
        """One FlowRow per row (findings as Finding objects, flow id 0)."""
        cols = self.cols
        rows = [
            FlowRow(**dict(zip(ROW_FIELDS, values, strict=True)))
            for values in zip(*(cols[n] for n in ROW_FIELDS), strict=True)
        ]
        for k, code, msg, frame, cap in zip(
            self.f_row, self.f_code, self.f_msg, self.f_frame, self.f_capture, strict=True
        ):
            rows[k].findings.append(Finding(0, code, msg, frame, cap))
        return rows
