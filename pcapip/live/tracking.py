"""The flow stage driven packet batch by packet batch, for a capture that never ends.

``pcapip analyze`` feeds a FlowTracker every batch of a file and builds the
table once at the end.  Live capture uses the very same tracker (so the final
summary is what ``analyze`` prints for the same packets) and adds three
things a capture without an end needs:

* **settlement**: a flow is reported the moment its client question is
  answered (PROXY header decoded, or the stream start proven not to be one;
  for UDP, its first datagram with payload), as a preview row made from a
  copy of the flow so the real flow is not touched; a flow that ends before
  that is reported with its final row;
* **release**: rows of ended flows leave the tracker after every batch and are
  spooled to a temporary file in chunks, so memory holds the open flows only;
* **a cap** on flows tracked at once (``max_flows``): when it is exceeded the
  oldest flows are ended early.  Connections already closed go first (they
  only wait out a short grace time for late retransmissions, and lose
  nothing); a connection still open that has to go gets the finding
  ``capture.flow_limit``, since its row may be incomplete.
"""

from __future__ import annotations

import copy
import pickle
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any

from pcapip.flows import findings as _findings
from pcapip.flows.findings import FindingKind, Level
from pcapip.flows.rows import FlowRow, compact
from pcapip.flows.table import FlowTable, build_table
from pcapip.flows.tracker import FlowTracker

FLOW_LIMIT = "capture.flow_limit"

_FLOW_LIMIT_KIND = FindingKind(
    FLOW_LIMIT,
    Level.WARNING,
    "Flow tracked only in part: too many connections open at once",
    "A live capture tracks at most --max-flows connections at the same time, so memory stays "
    "bounded however long it runs. This connection was among the oldest when the limit was "
    "exceeded and its tracking ended early: packets after that count as a new flow "
    "(usually mid-stream), and its counters stop there.",
    "Raise --max-flows if memory allows, or narrow the capture with a filter (-f 'tcp port 443'). "
    "The -w copy of the capture holds every packet: pcapip analyze on it has no limit.",
)


def register_findings() -> None:
    """Add the live-capture finding to the catalogue (idempotent)."""
    if FLOW_LIMIT not in _findings.CATALOGUE:
        _findings.CATALOGUE[FLOW_LIMIT] = _FLOW_LIMIT_KIND
        _findings.ORDER[FLOW_LIMIT] = max(_findings.ORDER.values(), default=-1) + 1


register_findings()


def preview(fl: Any) -> FlowRow:
    """The row ``fl`` would get if it ended now, leaving ``fl`` itself untouched.

    ``compact`` records findings on the flow it is given; on a copy with its
    own findings list those notes are not kept, so when the flow really ends
    its findings are judged on everything that happened.
    """
    clone = copy.copy(fl)
    clone.findings = list(fl.findings)
    if fl.seen_codes is not None:
        clone.seen_codes = set(fl.seen_codes)
    return compact(clone)


class LiveTracker(FlowTracker):
    """A FlowTracker that reports flows as they settle and caps the flows it holds.

    After every :meth:`feed`, :meth:`take_reports` returns one row per flow
    newly settled (a preview) or ended before it settled (its final row);
    every flow is reported exactly once.  :meth:`take_ended` returns the final
    rows of the flows that ended, which the caller keeps (see RowSpool).
    """

    def __init__(self, *, max_flows: int = 100_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if max_flows < 1:
            raise ValueError("max_flows must be at least 1")
        self.max_flows = max_flows
        self.limit_hits = 0  # flows ended early because of the cap
        self._pending: dict[int, Any] = {}  # id(flow) -> flow settled in this batch
        self._reported: set[int] = set()  # ids of live flows already reported
        self._reports: list[FlowRow] = []

    # ------------------------------------------------------------------ hooks
    # Settlement is observed, not intercepted: after each packet of the per-packet path
    # (the only place a flow's question can be answered before it ends) the flow's state
    # is looked at, however the tracker reached its answer.
    def _tcp_packet(self, p, i, j, key, *rest) -> None:  # noqa: ANN001
        super()._tcp_packet(p, i, j, key, *rest)
        fl = self.tcp.get(key)
        if fl is not None and fl.settled and id(fl) not in self._reported:
            self._pending[id(fl)] = fl

    def _udp_packet(self, p, i, j, key, side, frame, ts, olen, plen, *rest) -> None:  # noqa: ANN001
        super()._udp_packet(p, i, j, key, side, frame, ts, olen, plen, *rest)
        if plen > 0:  # a UDP flow's question is answered by its first datagram with payload
            fl = self.udp.get(key)
            if fl is not None and id(fl) not in self._reported:
                self._pending[id(fl)] = fl

    def _end_tcp(self, fl: Any) -> None:
        k = id(fl)
        super()._end_tcp(fl)
        self._ended(k)

    def _end_udp(self, fl: Any) -> None:
        k = id(fl)
        super()._end_udp(fl)
        self._ended(k)

    def _ended(self, k: int) -> None:
        self._pending.pop(k, None)
        if k in self._reported:
            self._reported.discard(k)
        else:
            self._reports.append(self.ended[-1])

    # ------------------------------------------------------------------ batches
    def feed(self, p: Any, capture: int = 0) -> None:
        super().feed(p, capture)
        self._enforce_cap()
        for k, fl in self._pending.items():
            self._reports.append(preview(fl))
            self._reported.add(k)
        self._pending.clear()

    @property
    def open_flows(self) -> int:
        return len(self.tcp) + len(self.udp)

    def _enforce_cap(self) -> None:
        over = self.open_flows - self.max_flows
        if over <= 0:
            return
        victims: list[Any] = []
        seen: set[int] = set()
        # closed TCP flows waiting out the eviction delay go first: nothing is lost with them
        for fl in self._closing:
            if len(victims) >= over:
                break
            if self.tcp.get(fl.key) is fl and id(fl) not in seen:
                victims.append(fl)
                seen.add(id(fl))
        if len(victims) < over:
            need = over - len(victims)
            oldest: list[Any] = []
            for table in (self.tcp, self.udp):
                n = 0
                for fl in table.values():  # insertion order: oldest first
                    if id(fl) in seen:
                        continue
                    oldest.append(fl)
                    n += 1
                    if n >= need:
                        break
            oldest.sort(key=lambda f: f.start_ns)
            victims += oldest[:need]
        for fl in victims:
            if fl.key in self.tcp and self.tcp[fl.key] is fl:
                if not getattr(fl, "closed", False):
                    self._cut(fl)
                self._end_tcp(fl)
            else:
                self._cut(fl)
                self._end_udp(fl)

    def _cut(self, fl: Any) -> None:
        """A flow still open ended early: its row may be incomplete, so it says so."""
        fl.note(
            FLOW_LIMIT,
            f"tracking ended early: more than {self.max_flows} flows were open at once "
            "(--max-flows)",
            None,
            fl.capture,
        )
        self.limit_hits += 1

    def take_reports(self) -> list[FlowRow]:
        """Rows to show now (settled or ended since the last call), in capture order."""
        out, self._reports = self._reports, []
        out.sort(key=lambda r: (r.capture, r.first_frame))
        return out

    def take_ended(self) -> list[FlowRow]:
        """Final rows of the flows that ended since the last call; the tracker forgets them."""
        out, self.ended = self.ended, []
        return out


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
) -> FlowTable:
    """End every open flow and build the table exactly as ``analyze`` builds it."""
    rest = tracker.finish()
    rows = list(spool)
    rows.extend(rest)
    table = build_table(rows, trusted=trusted, stats=tracker.stats, captures=list(captures))
    table.stats["captures"] = len(captures)
    return table
