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
* **release**: rows of ended flows stay in the tracker's one row store (packed
  numpy columns, moved to temporary files past a few MiB: ``pcapip.flows.packed``),
  as when ``analyze`` reads a file, so memory holds the open flows only; their
  findings are counted as they end (``take_ended_findings``) for the live view;
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
from collections import Counter
from typing import Any

import numpy as np

from pcapip.decode import Packets
from pcapip.flows.ending import FLOW_LIMIT
from pcapip.flows.rows import FlowRow
from pcapip.flows.state import FlowBase
from pcapip.flows.tracker import FlowTracker

__all__ = ["FLOW_LIMIT", "LiveTracker"]


class LiveTracker(FlowTracker):
    """A FlowTracker that reports every flow once: when it settles, or when it ends.

    After every :meth:`feed`, :meth:`take_reports` returns one row per flow
    newly settled (a preview) or ended before it settled (its final row).
    The rows of ended flows stay in the tracker for the final table
    (``pcapip.flows.table.finish_table``); :meth:`take_ended_codes` gives their
    findings counted as they end.
    """

    def __init__(self, *, max_flows: int = 100_000, **kwargs: Any) -> None:
        super().__init__(
            max_flows=max_flows, on_settled=self._on_settled, on_ended=self._on_ended, **kwargs
        )
        self._reported: set[int] = set()  # serials of open flows already reported
        self._reports: list[tuple[int, FlowRow]] = []
        self._ended_findings: Counter[str] = Counter()  # code -> flows ended with it

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
        self._ended_findings.update({f.code for f in row.findings})
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

    def take_ended_findings(self) -> Counter[str]:
        """Finding code -> flows ended with it since the last call (their final rows)."""
        out, self._ended_findings = self._ended_findings, Counter()
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
