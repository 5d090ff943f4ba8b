"""The flow stage driven packet batch by packet batch, for a capture that never ends.

``pcapip analyze`` feeds a FlowTracker every batch of a file and builds the
table once at the end. Live capture uses the very same tracker (so the final
summary is what ``analyze`` prints for the same packets), through its public
reporting API:

* **settlement**: a flow is reported the moment its client question is
  answered (``on_settled``: PROXY header decoded, or the stream start proven
  not to be one; for UDP, its first datagram with payload), as a preview
  row; a flow that ends before that is reported with its final row
  (``on_ended``);
* **release**: rows of ended flows leave the tracker after every batch
  (``take_ended``) and are spooled to a temporary file in chunks, so memory
  holds the open flows only;
* **a cap** on flows tracked at once (``max_flows``): when it is exceeded the
  oldest flows are ended early, closed ones first; a connection still open
  that has to go gets the finding ``capture.flow_limit``;
* **numbering**: every report carries the number ``analyze`` gives the flow
  in the final table (flows are numbered in order of their first packet).
  The tracker numbers flows (``serial``) as it creates them; a batch is fed
  in runs of one transport, so creation order is packet order.
"""

from __future__ import annotations

import dataclasses
import pickle
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np

from pcapip.decode import Packets
from pcapip.flows.rows import FlowRow
from pcapip.flows.state import FlowBase
from pcapip.flows.table import FlowTable
from pcapip.flows.table import finish_table as _finish_table
from pcapip.flows.tracker import FLOW_LIMIT, FlowTracker

__all__ = ["FLOW_LIMIT", "LiveTracker", "RowSpool", "finish_table"]


class LiveTracker(FlowTracker):
    """A FlowTracker that reports every flow once: when it settles, or when it ends.

    After every :meth:`feed`, :meth:`take_reports` returns one row per flow
    newly settled (a preview) or ended before it settled (its final row).
    :meth:`take_ended` (inherited) returns the final rows of the flows that
    ended, which the caller keeps (see RowSpool).
    """

    def __init__(self, *, max_flows: int = 100_000, **kwargs: Any) -> None:
        super().__init__(
            max_flows=max_flows, on_settled=self._on_settled, on_ended=self._on_ended, **kwargs
        )
        self._reported: set[int] = set()  # serials of open flows already reported
        self._reports: list[tuple[int, FlowRow]] = []

    def feed(self, p: Packets, capture: int = 0) -> None:
        """As FlowTracker.feed, in runs of one transport: the tracker handles a batch's UDP
        before its TCP, and serials must follow packet order to be analyze's flow numbers."""
        udp = p.proto == 17
        cuts = (np.flatnonzero(udp[1:] != udp[:-1]) + 1).tolist()
        if not cuts:
            super().feed(p, capture)
            return
        for a, b in zip([0, *cuts], [*cuts, len(p)], strict=True):
            super().feed(_rows(p, a, b), capture)

    def _on_settled(self, flow: FlowBase) -> None:
        self._reports.append((flow.serial, self.preview(flow)))
        self._reported.add(flow.serial)

    def _on_ended(self, flow: FlowBase, row: FlowRow) -> None:
        if flow.serial in self._reported:
            self._reported.discard(flow.serial)
        else:
            self._reports.append((flow.serial, row))

    def take_numbered(self) -> list[tuple[int, FlowRow]]:
        """(flow number in the final table, row) to show now: settled or ended since the
        last call, in capture order."""
        out, self._reports = self._reports, []
        out.sort(key=lambda nr: (nr[1].capture, nr[1].first_frame))
        return out

    def take_reports(self) -> list[FlowRow]:
        """Rows to show now (settled or ended since the last call), in capture order."""
        return [r for _, r in self.take_numbered()]


def _rows(p: Packets, a: int, b: int) -> Packets:
    """Packets a..b of a batch (the frame bytes stay shared)."""
    return Packets(
        **{
            f.name: getattr(p, f.name) if f.name == "data" else getattr(p, f.name)[a:b]
            for f in dataclasses.fields(p)
        }
    )


class RowSpool:
    """Final rows of ended flows, kept on disk in pickled chunks once there are many.

    Memory holds at most ``chunk`` rows; the rest waits in an anonymous
    temporary file (gone when closed, or when the process dies) until the
    final summary reads them back.
    """

    def __init__(self, chunk: int = 5_000) -> None:
        self.chunk = chunk
        self.count = 0
        self._mem: list[FlowRow] = []
        self._file: IO[bytes] | None = None
        self._chunks = 0

    def extend(self, rows: Sequence[FlowRow]) -> None:
        if not rows:
            return
        self._mem.extend(rows)
        self.count += len(rows)
        if len(self._mem) >= self.chunk:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="pcapip-live-")  # noqa: SIM115
            pickle.dump(self._mem, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._chunks += 1
            self._mem = []

    def __iter__(self) -> Iterator[FlowRow]:
        if self._file is not None:
            self._file.flush()
            self._file.seek(0)
            for _ in range(self._chunks):
                yield from pickle.load(self._file)
            self._file.seek(0, 2)
        yield from self._mem

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._mem = []


def finish_table(
    tracker: FlowTracker,
    spool: RowSpool,
    *,
    trusted: Sequence[Any] | None,
    captures: Sequence[str],
    warnings: Sequence[Any] = (),
    toa_asked: bool = False,
) -> FlowTable:
    """End every open flow and build the table exactly as ``analyze`` builds it
    (:func:`pcapip.flows.table.finish_table`, with the spooled rows and the capture
    reader's warnings)."""
    return _finish_table(
        tracker, captures, trusted, earlier=spool, warnings=warnings, toa_asked=toa_asked
    )
