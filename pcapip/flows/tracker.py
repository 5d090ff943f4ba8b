"""Flows: from decoded packet batches to one row per connection.

``FlowTracker`` is fed decoded batches in capture order and ends every flow
it holds when a connection is over (``pcapip.flows.ending``: closed and quiet
for ``linger`` seconds of capture time, half-closed for ``evict_after``, a
connection attempt that never completed its handshake for
``attempt_timeout``, a UDP flow idle for ``udp_timeout``), when a SYN reuses
its 4-tuple, when ``max_flows`` would be exceeded, or at
:meth:`FlowTracker.finish`. Ended flows become rows, held packed and moved
to temporary files once many have gathered (``pcapip.flows.holding``):
memory holds the connections still open and little else, however long the
capture.

One path for every capture: TCP flows are rows of the compiled table
(``pcapip.flows.tcptable``), whose loop applies the common packets itself
and hands the unusual ones to the per-packet rules (``pcapip.flows.machine``);
UDP datagrams all go through the rules (``pcapip.flows.udp``). The test
switch ``PCAPIP_CHECK_RULES=1`` makes the loop hand every packet to the
rules, and the tests compare both runs on every capture.

For a capture that never ends (live capture), the tracker reports as it goes:
``on_settled(flow)`` when a flow's client question is answered while it is
open, ``on_ended(flow, row)`` when it ends; :meth:`FlowTracker.take_ended`
drains the rows of ended flows, and :func:`pcapip.flows.table.finish_table`
builds the same table ``pcapip analyze`` builds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pcapip.decode.columns import (
    ST_FRAGMENT,
    ST_NOT_IP,
    ST_NOT_TCP_UDP,
    ST_TRUNCATED,
    ST_UNKNOWN_LINK,
    TH_SYN,
    Packets,
)
from pcapip.decode.status import in_flows
from pcapip.flows import ending
from pcapip.flows.attempts import ATTEMPT_TIMEOUT
from pcapip.flows.ending import OnEnded
from pcapip.flows.holding import Held
from pcapip.flows.machine import Machine
from pcapip.flows.oddities import Undecoded
from pcapip.flows.packed import PackedRows, Vocab
from pcapip.flows.rows import FlowRow, compact
from pcapip.flows.state import FlowBase, UdpFlow
from pcapip.flows.tcptable import TcpTable
from pcapip.flows.tunnels import TunnelCodes
from pcapip.flows.udp import UdpFlows

NS = 1_000_000_000

OnSettled = Callable[[FlowBase], None]


class FlowTracker:
    """Feeds on decoded batches; ends flows as connections end; rows come out.

    * ``registry``: the TOA registry (``--toa-kind``).
    * ``attempt_timeout``: seconds of capture time after which a connection
      attempt that never completed its handshake (SYN or SYN-ACK only, no
      payload, not closed) ends, quiet since its last packet
      (``pcapip.flows.attempts``).
    * ``max_flows``: at most this many flows open at once. When a batch
      leaves more, the oldest end early: closed connections first (they only
      wait out ``linger`` and lose nothing), then the oldest open ones, which
      get the finding ``capture.flow_limit``.
    * ``vxlan_ports``: UDP ports that carry VXLAN besides 4789 (``--vxlan-port``).
    * ``on_settled(flow)``: called once per flow whose client question is
      answered while it is open (TCP: PROXY header decoded or ruled out;
      UDP: first datagram with payload), after the :meth:`feed` in which that
      happened; a flow that ends in that same feed gets only ``on_ended``.
      ``preview(flow)`` gives the row it would have now.
    * ``on_ended(flow, row)``: called once per flow when it ends, with its
      final row. Findings that compare flows (``client.missing``, ...) are
      added later, by the table.

    The flow objects passed to the callbacks are snapshots for the duration
    of the call; ``flow.serial`` identifies a flow across both callbacks.
    """

    def __init__(
        self,
        *,
        registry: Any = None,
        udp_timeout: float = 60.0,
        evict_after: float = 120.0,
        linger: float = 2.0,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
        stream_limit: int = 65_600,
        max_flows: int | None = None,
        vxlan_ports: Sequence[int] = (),
        on_settled: OnSettled | None = None,
        on_ended: OnEnded | None = None,
    ) -> None:
        if max_flows is not None and max_flows < 1:
            raise ValueError("max_flows must be at least 1")
        from pcapip.dissect import DEFAULT_REGISTRY

        self.registry = registry if registry is not None else DEFAULT_REGISTRY
        self.evict_ns = int(evict_after * NS)
        self.linger_ns = int(linger * NS)
        self.attempt_ns = int(attempt_timeout * NS)
        self.stream_limit = stream_limit
        self.max_flows = max_flows
        self.on_settled = on_settled
        self.on_ended = on_ended
        self.capture = 0
        self.now: int | None = None  # capture time (ns) of the last expiry: a batch's latest
        self.linktypes: set[int] = set()
        self.stats: dict[str, int] = {
            "packets": 0,
            "packets_tcp": 0,
            "packets_udp": 0,
            "packets_other_ip": 0,
            "packets_not_ip": 0,
            "packets_fragment": 0,
            "packets_undecoded": 0,
            "packets_truncated": 0,
        }
        self.undecoded = Undecoded()  # why frames gave no TCP/UDP packet, per capture
        self.limit_hits = 0  # flows ended early by max_flows while still open
        self._udp_packets = 0
        self._machine = Machine(self.registry, stream_limit)
        self.held = Held()  # rows of ended flows, until taken
        #: each packet's tunnel as flow keys hold it; packets per encapsulation
        self.tunnels = TunnelCodes(self.held.vocab, tuple(vxlan_ports))
        self._tcp = TcpTable(self._machine, self.registry, self.attempt_ns, self.tunnels)
        self._udp = UdpFlows(self._machine, int(udp_timeout * NS), self.tunnels)
        self._settled: list[Any] = []  # flows (or table rows) settled during this feed
        #: keep the flows settled while open for :meth:`settled_previews` (the TUI's loader)
        self.keep_settled = False
        self._kept: list[Any] = []

    # ------------------------------------------------------------------ public
    @property
    def open_flows(self) -> int:
        """Flows held right now (TCP and UDP)."""
        return self._tcp.open_count() + self._udp.open_count()

    @property
    def vocab(self) -> Vocab:
        """The vocabulary the packed rows of :meth:`take_blocks` are coded in."""
        return self.held.vocab

    @property
    def held_bytes(self) -> int:
        """Bytes of ended flows' packed rows held in memory (the rest are on disk)."""
        return self.held.bytes

    @property
    def rows_on_disk(self) -> int:
        """Rows of ended flows moved to temporary files (not taken yet)."""
        return self.held.rows_on_disk

    @property
    def per_packet(self) -> int:
        """Packets the Python rules applied (a cost counter, not a result): the TCP packets
        the loop handed over, and every UDP datagram."""
        return self._tcp.per_packet + self._udp_packets

    @property
    def compiled(self) -> bool:
        """True when the TCP table's loop runs compiled code now (see ``tcptable``)."""
        return self._tcp.compiled

    def preview(self, flow: FlowBase) -> FlowRow:
        """The row ``flow`` would get if it ended now (the flow is not changed)."""
        return compact(flow)

    def feed(self, p: Packets, capture: int = 0) -> None:
        """Add one decoded batch (packets in capture order) from capture number ``capture``."""
        if len(p) == 0:
            return
        self.capture = capture
        self._machine.capture = capture
        idx, is_tcp = self._usable(p, capture)
        if idx.size == 0:
            return
        ntcp = int(np.count_nonzero(is_tcp))
        tun = self.tunnels.of(p)
        if ntcp < idx.size:
            rows = idx[~is_tcp]
            # (TCP and UDP flows share one sequence of serial numbers: the TCP table's)
            self._udp.feed(p, rows, tun, capture, self._tcp.next_serial, self._settled)
            self._udp_packets += rows.size
        if ntcp:
            self._tcp.feed(p, idx[is_tcp] if ntcp < idx.size else idx, tun, capture)
        self.advance(int(p.ts_ns[idx].max()))
        if self.max_flows is not None:
            self.limit_hits += ending.enforce_cap(self._tcp, self._udp, self.max_flows)
        self._flush()
        self._fire_settled()

    def advance(self, now: int) -> None:
        """End the flows that are over as of capture time ``now`` (ns): what every batch does
        after its packets; a recording read in parts replays it at the end of the last part."""
        self.now = now
        self._tcp.expire(now, self.linger_ns, self.evict_ns, self.attempt_ns)
        self._udp.expire(now)

    def _usable(self, p: Packets, capture: int) -> tuple[np.ndarray, np.ndarray]:
        """Count the batch's packets by kind; the rows of its TCP/UDP packets, and which
        of them are TCP."""
        st = self.stats
        n = len(p)
        st["packets"] += n
        status = p.status
        proto = p.proto
        usable = in_flows(p)
        st["packets_not_ip"] += int(np.count_nonzero(status & (ST_NOT_IP | ST_UNKNOWN_LINK)))
        st["packets_fragment"] += int(np.count_nonzero(status & ST_FRAGMENT))
        st["packets_truncated"] += int(np.count_nonzero(status & ST_TRUNCATED))
        st["packets_other_ip"] += int(np.count_nonzero(status & ST_NOT_TCP_UDP))
        idx = np.flatnonzero(usable)
        st["packets_undecoded"] += int(n - idx.size)
        is_tcp = proto[idx] == 6
        self.undecoded.add(p, capture, usable, idx[~is_tcp])
        if idx.size:
            ntcp = int(np.count_nonzero(is_tcp))
            st["packets_tcp"] += ntcp
            st["packets_udp"] += int(idx.size - ntcp)
            lt = p.linktype[idx]
            if lt[0] == lt[-1] and (lt == lt[0]).all():
                self.linktypes.add(int(lt[0]))
            else:
                self.linktypes.update(np.unique(lt).tolist())
        return idx, is_tcp

    def end_all(self) -> None:
        """End every open flow, as at the end of a capture (rows wait for take_ended)."""
        ending.end_all(self._tcp)
        self._udp.end_all()
        self._flush(force=True)
        self._settled = []
        self._tcp.release()

    def end_done(self) -> None:
        """End the TCP flows closed in both directions or reset, as at the end of a capture
        (rows wait for take_blocks): a recording read in parts keeps apart the flows whose
        rows only later packets, not the clock, could change."""
        ending.end_done(self._tcp)
        self._flush(force=True)

    def finish(self) -> list[FlowRow]:
        """End every open flow; returns the rows of all ended flows not taken yet."""
        self.end_all()
        return self.take_ended()

    def take_ended(self) -> list[FlowRow]:
        """Rows of the flows that ended since the last call (the tracker forgets them)."""
        self._flush(force=True)
        return self.held.take_rows()

    def take_blocks(self) -> list[PackedRows]:
        """Like :meth:`take_ended`, as the packed blocks they are held in (codes of
        ``vocab``)."""
        self._flush(force=True)
        return self.held.take_blocks()

    def settled_previews(self) -> list[PackedRows]:
        """Preview rows (codes of ``vocab``) of the flows whose client question was answered
        since the last call and that are still open, kept while ``keep_settled`` is set:
        what a reader shows before the flows end. The table's plain rows are built column
        by column, not through a flow object each; a flow's final row (the same first
        frame) later replaces its preview."""
        items, self._kept = self._kept, []
        tcp = [i for i in items if not isinstance(i, UdpFlow)]
        out = self._tcp.previews(tcp, self.vocab)
        udp = [compact(f) for f in items if isinstance(f, UdpFlow) and self._udp.still_open(f)]
        if udp:
            out.append(PackedRows.from_rows(udp, self.vocab))
        return out

    # ------------------------------------------------------------------ reporting
    def _flush(self, force: bool = False) -> None:
        """Turn the flows ended in this feed into rows (and report them)."""
        cb = self.on_ended
        floor = self._udp.oldest_start()
        ending.flush(
            self._tcp, self._machine.finish_tcp, self.held, self._settled, cb, force, floor
        )
        if self._udp.ending:
            flows, self._udp.ending = self._udp.ending, []
            rows = [compact(fl) for fl in flows]
            self.held.keep(rows)
            if cb is not None:
                for fl, r in zip(flows, rows, strict=True):
                    cb(fl, r)

    def _fire_settled(self) -> None:
        if not self._settled:
            return
        items, self._settled = self._settled, []
        if self.keep_settled:
            self._kept.extend(items)
        cb = self.on_settled
        if cb is None:
            return
        for item in items:
            if isinstance(item, UdpFlow):
                if self._udp.still_open(item):
                    cb(item)
                continue
            fl = self._tcp.still_open(item)
            if fl is not None:
                cb(fl)


def warm_compiled() -> float:
    """Load the compiled flow loops: the ahead-of-time module, or else numba with its
    cached kernels (compiling them on a first-ever run).

    Returns the seconds it took (0.0 when the compiled path is unavailable or
    switched off). A tracker's table switches to compiled code as soon as numba
    is loaded, so a long-running reader (live capture) can call this in the
    background and keep analysing meanwhile.
    """
    import struct
    import time

    from pcapip.decode import decode
    from pcapip.decode import warm_compiled as warm_engine
    from pcapip.flows import kernel as K
    from pcapip.sources import accel
    from pcapip.sources.batch import FrameBatch

    t0 = time.perf_counter()
    if accel.choose(None, want_compiled=True) != accel.BACKEND_COMPILED:
        return 0.0
    warm_engine()

    def frame(flags: int) -> bytes:
        tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, flags, 65535, 0, 0)
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, bytes(4), bytes(4)
        )
        return b"\0" * 12 + b"\x08\x00" + ip + tcp

    batch = FrameBatch.of_frames([frame(TH_SYN), frame(0x11)], ts_ns=[0, 10 * NS])  # SYN, FIN-ACK
    tracker = FlowTracker(linger=1.0)  # numba is loaded (or the module current): compiled
    tracker.feed(decode(batch), 0)
    tracker.finish()
    K.rehash.compiled()(np.zeros(8, dtype=np.int64), np.zeros(16, dtype=np.int64))
    return time.perf_counter() - t0
