"""Flows: from decoded packet batches to one row per connection.

``FlowTracker`` is fed decoded batches in capture order and ends every flow
it holds when a connection is over (closed and quiet for ``linger`` seconds
of capture time, half-closed for ``evict_after``, a connection attempt that
never completed its handshake for ``attempt_timeout`` (``pcapip.flows.attempts``:
what keeps a SYN flood's memory to the attempts of the last few seconds), a UDP
flow idle for ``udp_timeout``), when a SYN reuses its 4-tuple, when ``max_flows`` would be
exceeded, or at :meth:`FlowTracker.finish`. Ended flows become rows, packed
into numpy columns (``pcapip.flows.packed``) and moved to temporary files
once more than SPILL_BYTES of them have gathered; memory holds the
connections still open and little else, however long the capture.

Two ways to apply the rules of ``pcapip.flows.machine`` to the packets:

* ``mode="fast"`` (the default) keeps TCP flows as rows of an int64 table and
  runs a compiled loop (``pcapip.flows.kernel``) over each batch. The loop
  applies the common packets itself and hands the packets that need Python
  (a PROXY header to parse, an unusual TOA option, a stream start to
  reassemble) to the machine, one flow at a time, in order. Plain flows
  become rows column by column (``pcapip.flows.columnar``). With the
  ahead-of-time kernels built (``python -m pcapip.build_kernels``) this
  holds from the first packet. Without them, while numba is not loaded (a
  small capture finishes before loading it would pay off), packets go
  through the machine directly, the faster choice then; once it is loaded
  (the reader loads it for a large capture), the open flows move to the
  compiled table.
* ``mode="reference"`` sends every packet through the machine, one Python
  object per flow. The tests compare both modes on every capture, so what
  the fast path leaves to its compiled loop is checked, not trusted.

For a capture that never ends (live capture), the tracker reports as it goes:
``on_settled(flow)`` when a flow's client question is answered while it is
open, ``on_ended(flow, row)`` when it ends; :meth:`FlowTracker.take_ended`
drains the rows of ended flows, and :func:`pcapip.flows.table.finish_table`
builds the same table ``pcapip analyze`` builds.
"""

from __future__ import annotations

import heapq
import ipaddress
import mmap
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pcapip.decode.columns import (
    ST_BAD_HEADER,
    ST_FRAGMENT,
    ST_NOT_IP,
    ST_NOT_TCP_UDP,
    ST_TRUNCATED,
    ST_UNKNOWN_LINK,
    TH_ACK,
    TH_SYN,
    Packets,
)
from pcapip.flows import layout as L
from pcapip.flows.attempts import ATTEMPT_TIMEOUT, is_attempt
from pcapip.flows.columnar import compact_plain, row_header
from pcapip.flows.machine import Machine, PacketColumns
from pcapip.flows.oddities import Undecoded
from pcapip.flows.packed import DiskStore, PackedRows, Vocab, spill
from pcapip.flows.rows import FlowRow, compact
from pcapip.flows.rows import preview as _preview
from pcapip.flows.state import BY_FIRST, HS_PENDING, FlowBase, TcpFlow, ToaSeen, UdpFlow

UNUSABLE = ST_UNKNOWN_LINK | ST_NOT_IP | ST_FRAGMENT | ST_NOT_TCP_UDP | ST_BAD_HEADER
NS = 1_000_000_000
FLOW_LIMIT = "capture.flow_limit"
# a first batch at least this large is worth loading the compiled loop for (~0.3 s to import
# numba, what the per-packet path spends on about this many packets)
COMPILE_MIN_PACKETS = 50_000
# ended flows of the compiled table turned into rows together (unless reported one by one)
COMPACT_ROWS = 8192
# rows of flows that needed Python, packed together once this many have ended
PACK_ROWS = 8192
# packed rows of ended flows held in memory before they move to temporary files: a capture's
# memory is its open connections plus at most this (bench/README.md)
SPILL_BYTES = 2 << 20
# ended flows of the compiled table turned into rows at once at most (the end of a capture
# may end half a million attempts together: a copy of their table rows is made per block)
COMPACT_MAX = 16_384

_MASK64 = (1 << 64) - 1

OnSettled = Callable[[FlowBase], None]
OnEnded = Callable[[FlowBase, FlowRow], None]


def row_hash(a_hi: int, a_lo: int, a_port: int, b_hi: int, b_lo: int, b_port: int) -> int:
    """The compiled table's hash of a flow key (addresses as int64 bit patterns), as
    ``pcapip.flows.kernel.track_tcp`` computes it."""
    from pcapip.flows import kernel as K

    m = K._M32
    fa = (a_hi ^ (a_hi >> 32) ^ a_lo ^ (a_lo >> 32)) & m
    fb = (b_hi ^ (b_hi >> 32) ^ b_lo ^ (b_lo >> 32)) & m
    h = fa * K._K1 + fb * K._K2 + (a_port + b_port * 65536) * K._K3
    return h ^ (h >> 29)


def _done(fin_mask: int) -> bool:
    """Closed in both directions, or reset: only late retransmissions can follow."""
    return bool(fin_mask & 4) or fin_mask == 3


def _deadline(fl: TcpFlow, t: FlowTracker) -> int | None:
    """Capture time after which ``fl`` is over unless a packet comes (None: not before the
    end); the compiled table's twin is ``kernel.expire``."""
    if fl.closed:
        return fl.end_ns + (t.linger_ns if _done(fl.fin_mask) else t.evict_ns)
    paid = fl.pay_seen[0] or fl.pay_seen[1]
    if is_attempt(fl.closed, fl.hs, fl.syn_seq is not None, fl.synack_seen, paid):
        return fl.end_ns + t.attempt_ns
    return None


def _attempt_over(fl: TcpFlow, t: FlowTracker, ts: int) -> bool:
    """An attempt quiet past its timeout is over whenever eviction runs (the compiled
    twin is in ``kernel.track_tcp``): a later packet starts a new flow. An open flow's
    only deadline is an attempt's (see :func:`_deadline`)."""
    if fl.closed:
        return False
    due = _deadline(fl, t)
    return due is not None and due < ts


class FlowTracker:
    """Feeds on decoded batches; ends flows as connections end; rows come out.

    * ``registry``: the TOA registry (``--toa-kind``); ``mode``: "fast" or
      "reference" (see the module docstring); ``backend``: for the fast mode,
      "auto" (compiled when worth it), "compiled" or "pure" (the compiled
      loop's Python twin, for tests).
    * ``attempt_timeout``: seconds of capture time after which a connection
      attempt that never completed its handshake (SYN or SYN-ACK only, no
      payload, not closed) ends, quiet since its last packet
      (``pcapip.flows.attempts``).
    * ``max_flows``: at most this many flows open at once. When a batch
      leaves more, the oldest end early: closed connections first (they only
      wait out ``linger`` and lose nothing), then the oldest open ones, which
      get the finding ``capture.flow_limit``.
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
        mode: str = "fast",
        backend: str | None = None,
        udp_timeout: float = 60.0,
        evict_after: float = 120.0,
        linger: float = 2.0,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
        stream_limit: int = 65_600,
        max_flows: int | None = None,
        on_settled: OnSettled | None = None,
        on_ended: OnEnded | None = None,
    ) -> None:
        if mode not in ("fast", "reference"):
            raise ValueError(f"mode must be 'fast' or 'reference', not {mode!r}")
        if backend not in (None, "auto", "compiled", "pure"):
            raise ValueError(f"backend must be 'auto', 'compiled' or 'pure', not {backend!r}")
        if max_flows is not None and max_flows < 1:
            raise ValueError("max_flows must be at least 1")
        from pcapip.dissect import DEFAULT_REGISTRY

        self.registry = registry if registry is not None else DEFAULT_REGISTRY
        self.mode = mode
        self.backend = backend
        self.udp_timeout_ns = int(udp_timeout * NS)
        self.evict_ns = int(evict_after * NS)
        self.linger_ns = int(linger * NS)
        self.attempt_ns = int(attempt_timeout * NS)
        self.stream_limit = stream_limit
        self.max_flows = max_flows
        self.on_settled = on_settled
        self.on_ended = on_ended
        self.capture = 0
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
        self.per_packet = 0  # packets the Python rules applied (a cost counter, not a result)
        self.limit_hits = 0  # flows ended early by max_flows while still open
        self._machine = Machine(self.registry, stream_limit)
        self._serial = 0
        self._udp: dict[tuple, UdpFlow] = {}
        self._udp_order: deque[UdpFlow] = deque()
        self._tcp: _TcpObjects | _TcpRows | None = None
        self._auto = False  # TCP flows may still move to the compiled table
        # rows of ended flows, packed (every block shares ``vocab``); row lists wait in
        # ``_ended_rows`` until a block's worth has gathered
        self.vocab = Vocab()
        self._ended: list[PackedRows] = []
        self._ended_rows: list[FlowRow] = []
        self._held = 0  # bytes of packed rows in memory
        self._spool: PackedRows | None = None  # packed rows moved to temporary files
        self._spill_failed = False  # writing them failed once: keep the rest in memory
        self._ending_udp: list[UdpFlow] = []
        self._settled: list[Any] = []  # flows (or table rows) settled during this feed

    # ------------------------------------------------------------------ public
    @property
    def open_flows(self) -> int:
        """Flows held right now (TCP and UDP)."""
        return (self._tcp.open_count() if self._tcp is not None else 0) + len(self._udp)

    @property
    def held_bytes(self) -> int:
        """Bytes of ended flows' packed rows held in memory (the rest are on disk)."""
        return self._held

    @property
    def rows_on_disk(self) -> int:
        """Rows of ended flows moved to temporary files (not taken yet)."""
        return len(self._spool) if self._spool is not None else 0

    @property
    def compiled(self) -> bool:
        """True when TCP packets run through the compiled loop (now; see the module docstring)."""
        return isinstance(self._tcp, _TcpRows) and self._tcp.compiled

    def preview(self, flow: FlowBase) -> FlowRow:
        """The row ``flow`` would get if it ended now (the flow is not changed)."""
        return _preview(flow)

    def feed(self, p: Packets, capture: int = 0) -> None:
        """Add one decoded batch (packets in capture order) from capture number ``capture``."""
        n = len(p)
        if n == 0:
            return
        self.capture = capture
        self._machine.capture = capture
        st = self.stats
        st["packets"] += n
        status = p.status
        proto = p.proto
        usable = ((status & UNUSABLE) == 0) & (p.l4_off >= 0) & ((proto == 6) | (proto == 17))
        # frames whose transport header itself is cut carry no usable ports/flags
        usable &= ~(((status & ST_TRUNCATED) != 0) & (p.pay_off <= 0))
        st["packets_not_ip"] += int(np.count_nonzero(status & (ST_NOT_IP | ST_UNKNOWN_LINK)))
        st["packets_fragment"] += int(np.count_nonzero(status & ST_FRAGMENT))
        st["packets_truncated"] += int(np.count_nonzero(status & ST_TRUNCATED))
        st["packets_other_ip"] += int(np.count_nonzero(status & ST_NOT_TCP_UDP))
        idx = np.flatnonzero(usable)
        st["packets_undecoded"] += int(n - idx.size)
        is_tcp = proto[idx] == 6
        self.undecoded.add(p, capture, usable, idx[~is_tcp])
        if idx.size == 0:
            return
        ntcp = int(np.count_nonzero(is_tcp))
        st["packets_tcp"] += ntcp
        st["packets_udp"] += int(idx.size - ntcp)
        lt = p.linktype[idx]
        if lt[0] == lt[-1] and (lt == lt[0]).all():
            self.linktypes.add(int(lt[0]))
        else:
            self.linktypes.update(np.unique(lt).tolist())

        if ntcp < idx.size:
            rows = idx[~is_tcp]
            self._feed_udp(p, rows, *_keys(p, rows))
        if ntcp:
            rows = idx[is_tcp] if ntcp < idx.size else idx
            if self._tcp is None or self._auto:
                self._choose_store(ntcp)
            assert self._tcp is not None
            self._tcp.feed(p, rows)
        self._evict(int(p.ts_ns[idx].max()))
        if self.max_flows is not None:
            self._enforce_cap()
        self._flush()
        self._fire_settled()

    def end_all(self) -> None:
        """End every open flow, as at the end of a capture (rows wait for take_ended)."""
        if self._tcp is not None:
            self._tcp.end_all()
        for fl in list(self._udp.values()):
            self._end_udp(fl)
        self._flush(force=True)
        self._settled = []
        if isinstance(self._tcp, _TcpRows):
            self._tcp.release()

    def finish(self) -> list[FlowRow]:
        """End every open flow; returns the rows of all ended flows not taken yet."""
        self.end_all()
        return self.take_ended()

    def take_ended(self) -> list[FlowRow]:
        """Rows of the flows that ended since the last call (the tracker forgets them)."""
        self._flush(force=True)
        out: list[FlowRow] = []
        for part in self._ended:
            out.extend(part.to_rows(self.vocab))
        out.extend(self._ended_rows)
        self._forget()
        return out

    def take_blocks(self) -> list[PackedRows]:
        """Like :meth:`take_ended`, as the packed blocks they are held in (codes of
        ``vocab``)."""
        self._flush(force=True)
        self._pack_rows()
        out = self._ended
        self._forget()
        return out

    def _forget(self) -> None:
        self._ended = []
        self._ended_rows = []
        self._held = 0
        self._spool = None

    def _keep(self, part: PackedRows | list[FlowRow]) -> None:
        """Hold the rows of ended flows until they are taken, packed."""
        if isinstance(part, PackedRows):
            self._pack_rows()  # (kept in the order they ended)
            self._hold(part)
            return
        self._ended_rows.extend(part)
        if len(self._ended_rows) >= PACK_ROWS:
            self._pack_rows()

    def _pack_rows(self) -> None:
        if self._ended_rows:
            self._hold(PackedRows.from_rows(self._ended_rows, self.vocab))
            self._ended_rows = []

    def _hold(self, part: PackedRows) -> None:
        """Keep a packed block; past SPILL_BYTES in memory, move every block to disk.

        If the temporary file cannot be written (no space, no temporary directory),
        the rows stay in memory from then on: slower to grow out of, never lost.
        """
        self._ended.append(part)
        self._held += part.nbytes
        if self._held <= SPILL_BYTES or self._spill_failed:
            return
        if self._spool is None:
            self._spool = PackedRows(DiskStore())
        store = self._spool.cols
        assert isinstance(store, DiskStore)
        kept: list[PackedRows] = []
        for p in self._ended:
            if p is self._spool:
                continue
            if not self._spill_failed:
                try:
                    spill(store, p)
                    continue
                except OSError:
                    self._spill_failed = True
            kept.append(p)
        self._ended = ([self._spool] if len(self._spool) else []) + kept
        self._held = sum(p.nbytes for p in kept)

    # ------------------------------------------------------------------ choices
    def _choose_store(self, n: int) -> None:
        """Pick how TCP flows are kept, at the first TCP batch.

        ``auto`` takes the compiled table when compiled kernels cost nothing
        more to start (the ahead-of-time module is built, or numba is loaded).
        Otherwise it starts with the per-packet machine (a small capture
        finishes before loading numba would pay off) and moves the open flows
        to the compiled table as soon as numba is loaded (the reader loads it
        for a large capture) or a batch is large.
        """
        from pcapip.sources import accel

        if self._tcp is None:
            self._auto = False
            if self.mode == "reference":
                self._tcp = _TcpObjects(self)
                return
            if self.backend == "pure":
                self._tcp = _TcpRows(self, accel.BACKEND_PURE)
                return
            if self.backend == "compiled":
                self._tcp = _TcpRows(self, accel.choose("compiled", want_compiled=True))
                return
        if accel.pure_forced():
            self._auto = False
            if self._tcp is None:
                self._tcp = _TcpObjects(self)
            return
        if accel.compiled_cheap() or n >= COMPILE_MIN_PACKETS:
            backend = accel.choose(None, want_compiled=True)
            if backend == accel.BACKEND_COMPILED:
                rows = _TcpRows(self, backend)
                if isinstance(self._tcp, _TcpObjects):
                    rows.adopt(self._tcp)
                self._tcp = rows
                self._auto = False
                return
        if self._tcp is None:
            self._tcp = _TcpObjects(self)
            self._auto = True

    def next_serial(self) -> int:
        if isinstance(self._tcp, _TcpRows):
            return self._tcp.next_serial()
        self._serial += 1
        return self._serial

    # ------------------------------------------------------------------ UDP
    def _feed_udp(self, p: Packets, rows: np.ndarray, keys: list[tuple], sides: list[int]) -> None:
        c = PacketColumns(p, rows)
        m = self._machine
        udp = self._udp
        timeout = self.udp_timeout_ns
        capture = self.capture
        for j in range(len(keys)):
            key = keys[j]
            side = sides[j]
            ts = c.ts[j]
            fl = udp.get(key)
            if fl is None or ts - fl.end_ns > timeout:
                if fl is not None:
                    self._end_udp(fl)
                fl = UdpFlow(
                    key, capture, c.frame[j], ts, ts, side, egress=side, egress_by=BY_FIRST
                )
                fl.serial = self.next_serial()
                udp[key] = fl
                self._udp_order.append(fl)
            was = fl.settled
            m.udp(fl, c, j, side)
            if fl.settled and not was:
                self._settled.append(fl)
        self.per_packet += len(keys)

    def _end_udp(self, fl: UdpFlow) -> None:
        if self._udp.get(fl.key) is fl:
            del self._udp[fl.key]
        self._ending_udp.append(fl)

    # ------------------------------------------------------------------ ending
    def _evict(self, now: int) -> None:
        """End connections that are over as of capture time ``now``.

        A connection closed in both directions (or reset) is over once it has
        been quiet for ``linger`` seconds of capture time (time enough for the
        last retransmissions); a half-closed one after ``evict_after``; a UDP
        flow after ``udp_timeout`` without datagrams.
        """
        if self._tcp is not None:
            self._tcp.evict(now)
        u = self._udp_order
        ulimit = now - self.udp_timeout_ns
        while u:
            fl = u[0]
            if self._udp.get(fl.key) is not fl:
                u.popleft()
                continue
            if fl.end_ns >= ulimit:
                break
            u.popleft()
            self._end_udp(fl)

    def _enforce_cap(self) -> None:
        assert self.max_flows is not None
        over = self.open_flows - self.max_flows
        if over <= 0:
            return
        tcp = self._tcp
        # closed TCP flows waiting out the eviction delay go first: nothing is lost with them
        if tcp is not None:
            over -= tcp.end_closed(over)
        if over <= 0:
            return
        oldest: list[tuple[int, int, Any]] = []
        if tcp is not None:
            oldest += tcp.oldest_open(over)
        for n, fl in enumerate(self._udp.values(), 1):  # insertion order: oldest first
            oldest.append((fl.start_ns, 1, fl))
            if n >= over:
                break
        oldest.sort(key=lambda x: (x[0], x[1]))
        note = (
            f"tracking ended early: more than {self.max_flows} flows were open at once "
            "(--max-flows)"
        )
        for _, _, handle in oldest[:over]:
            self.limit_hits += 1
            if isinstance(handle, UdpFlow):
                handle.note(FLOW_LIMIT, note, None, handle.capture)
                self._end_udp(handle)
            else:
                assert tcp is not None
                tcp.cut(handle, note)

    def _flush(self, force: bool = False) -> None:
        """Turn the flows ended in this feed into rows (and report them)."""
        cb = self.on_ended
        if self._tcp is not None:
            self._tcp.flush(cb, force)
        if self._ending_udp:
            flows, self._ending_udp = self._ending_udp, []
            rows = [compact(fl) for fl in flows]
            self._keep(rows)
            if cb is not None:
                for fl, r in zip(flows, rows, strict=True):
                    cb(fl, r)

    def _fire_settled(self) -> None:
        if not self._settled:
            return
        items, self._settled = self._settled, []
        cb = self.on_settled
        if cb is None:
            return
        for item in items:
            if isinstance(item, UdpFlow):
                if self._udp.get(item.key) is item:
                    cb(item)
                continue
            assert self._tcp is not None
            fl = self._tcp.still_open(item)
            if fl is not None:
                cb(fl)


def _keys(p: Packets, rows: np.ndarray) -> tuple[list[tuple], list[int]]:
    """Flow keys as tuples (proto, a_hi, a_lo, a_port, b_hi, b_lo, b_port) and the sending side
    (0: the smaller (address, port) end, A)."""
    k = _canonical(p, rows)
    pr = p.proto[rows].tolist()
    keys = list(
        zip(
            pr,
            k[0].tolist(),
            k[1].tolist(),
            k[2].tolist(),
            k[3].tolist(),
            k[4].tolist(),
            k[5].tolist(),
            strict=True,
        )
    )
    return keys, k[6].tolist()


def _canonical(p: Packets, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """(a_hi, a_lo, a_port, b_hi, b_lo, b_port, side) for packets ``rows``."""
    src_hi, src_lo, dst_hi, dst_lo = p.src_hi[rows], p.src_lo[rows], p.dst_hi[rows], p.dst_lo[rows]
    sport = p.sport[rows].astype(np.int64)
    dport = p.dport[rows].astype(np.int64)
    src_first = (src_hi < dst_hi) | (
        (src_hi == dst_hi) & ((src_lo < dst_lo) | ((src_lo == dst_lo) & (sport <= dport)))
    )
    return (
        np.where(src_first, src_hi, dst_hi),
        np.where(src_first, src_lo, dst_lo),
        np.where(src_first, sport, dport),
        np.where(src_first, dst_hi, src_hi),
        np.where(src_first, dst_lo, src_lo),
        np.where(src_first, dport, sport),
        (~src_first).astype(np.int64),
    )


def _mapped(rows: int, width: int, dtype: Any) -> tuple[mmap.mmap, np.ndarray]:
    """A zeroed ``rows`` x ``width`` table in anonymous memory (pages become resident
    when first written) and its mapping."""
    m = mmap.mmap(-1, max(1, rows * width * np.dtype(dtype).itemsize), flags=mmap.MAP_PRIVATE)
    return m, np.frombuffer(m, dtype=dtype).reshape(rows, width)


# ---------------------------------------------------------------------- one object per flow
class _TcpObjects:
    """TCP flows as TcpFlow objects, every packet through the machine."""

    compiled = False

    def __init__(self, t: FlowTracker) -> None:
        self.t = t
        self.flows: dict[tuple, TcpFlow] = {}
        self.closing: dict[int, TcpFlow] = {}  # serial -> flow, in order of first close
        self.heap: list[tuple[int, int, TcpFlow]] = []
        self.ending: list[TcpFlow] = []
        t._machine.closed = self._closed

    def open_count(self) -> int:
        return len(self.flows)

    def feed(self, p: Packets, rows: np.ndarray) -> None:
        t = self.t
        keys, sides = _keys(p, rows)
        c = PacketColumns(p, rows)
        tcp = t._machine.tcp
        flows = self.flows
        settled = t._settled
        capture = t.capture
        for j in range(len(keys)):
            key = keys[j]
            f = c.flags[j]
            fl = flows.get(key)
            if fl is None:
                fl = self._new(key, sides[j], c.frame[j], c.ts[j], capture)
            elif (
                (f & TH_SYN and not f & TH_ACK)
                and (fl.closed or (fl.syn_seq is not None and c.seq[j] != fl.syn_seq))
            ) or _attempt_over(fl, t, c.ts[j]):
                self._end(fl)
                fl = self._new(key, sides[j], c.frame[j], c.ts[j], capture)
            was, was_hs = fl.settled, fl.hs
            tcp(fl, p, c, j, sides[j])
            if fl.settled and not was:
                settled.append(fl)
            if fl.hs == HS_PENDING and was_hs != HS_PENDING and not fl.closed:
                self._schedule(fl)
        t.per_packet += len(keys)

    def _new(self, key: tuple, side: int, frame: int, ts: int, capture: int) -> TcpFlow:
        fl = TcpFlow(key, capture, frame, ts, ts, side)
        fl.serial = self.t.next_serial()
        self.flows[key] = fl
        return fl

    def _closed(self, fl: TcpFlow) -> None:
        if fl.serial not in self.closing:
            self.closing[fl.serial] = fl
        self._schedule(fl)

    def _schedule(self, fl: TcpFlow) -> None:
        d = _deadline(fl, self.t)
        if d is not None:
            heapq.heappush(self.heap, (d, fl.serial, fl))

    def _end(self, fl: TcpFlow) -> None:
        if self.flows.get(fl.key) is fl:
            del self.flows[fl.key]
        self.closing.pop(fl.serial, None)
        self.ending.append(fl)

    def evict(self, now: int) -> None:
        # deadlines in the heap are never later than the real ones (see kernel.expire)
        h = self.heap
        t = self.t
        while h and h[0][0] < now:
            _, _, fl = heapq.heappop(h)
            if self.flows.get(fl.key) is not fl:
                continue
            real = _deadline(fl, t)
            if real is None:
                continue
            if real < now:
                self._end(fl)
            else:
                heapq.heappush(h, (real, fl.serial, fl))

    def end_closed(self, limit: int) -> int:
        victims = []
        for fl in self.closing.values():
            if len(victims) >= limit:
                break
            victims.append(fl)
        for fl in victims:
            self._end(fl)
        return len(victims)

    def oldest_open(self, limit: int) -> list[tuple[int, int, Any]]:
        out: list[tuple[int, int, Any]] = []
        for fl in self.flows.values():  # insertion order: oldest first
            out.append((fl.start_ns, 0, fl))
            if len(out) >= limit:
                break
        return out

    def cut(self, fl: TcpFlow, note: str) -> None:
        fl.note(FLOW_LIMIT, note, None, fl.capture)
        self._end(fl)

    def end_all(self) -> None:
        for fl in list(self.flows.values()):
            self._end(fl)

    def flush(self, cb: OnEnded | None, force: bool) -> None:
        if not self.ending:
            return
        flows, self.ending = self.ending, []
        finish = self.t._machine.finish_tcp
        rows = []
        for fl in flows:
            finish(fl)
            rows.append(compact(fl))
        self.t._keep(rows)
        if cb is not None:
            for fl, r in zip(flows, rows, strict=True):
                cb(fl, r)

    def still_open(self, fl: TcpFlow) -> TcpFlow | None:
        return fl if self.flows.get(fl.key) is fl else None


# ---------------------------------------------------------------------- the compiled flow table
class _TcpRows:
    """TCP flows as rows of an int64 table driven by the compiled loop.

    A flow whose handling needed Python keeps a TcpFlow object (``extra``) for
    what only Python holds (decoded header, findings, a stream start being
    reassembled); its row stays the authority for everything else.
    """

    def __init__(self, t: FlowTracker, backend: str) -> None:
        from pcapip.dissect.toa_registry import L_PORT_V4
        from pcapip.flows import kernel as K
        from pcapip.sources import accel

        self.t = t
        self.K = K
        self.compiled = backend == accel.BACKEND_COMPILED
        self._track = K.track_tcp.get(backend)
        self._expire = K.expire.get(backend)
        self._unindex = K.unindex.get(backend)
        self._reindex = K.reindex.get(backend)
        self._settle_gc = self.compiled
        cap = 1024
        # the flow table and the first payload bytes, grown by remapping (see _grow)
        self._maps: dict[str, mmap.mmap] = {}
        self._maps["S"], self.S = _mapped(cap, L.XBASE, np.int64)
        # the fields a flow writes only for a TOA option or a PROXY header (layout.XBASE)
        self._maps["X"], self.X = _mapped(cap, L.NXFIELDS, np.int64)
        self._maps["P"], self.P = _mapped(cap, 2 * L.PAYLOAD_KEEP, np.uint8)
        self.H = np.zeros(4096, dtype=np.int64)
        self.free = np.arange(cap - 1, -1, -1, dtype=np.int64)
        self.ct = np.zeros(K.N_COUNTERS, dtype=np.int64)
        self.ct[K.CT_FREE_TOP] = cap
        self.ct[K.CT_SERIAL] = t._serial  # serials go on from the flows numbered so far
        self.ct[K.CT_ATTEMPT_NS] = t.attempt_ns
        self.tmpl = np.ascontiguousarray(L.template()[: L.XBASE])
        self.extra: dict[int, TcpFlow] = {}
        self.headers: dict[int, Any] = {}  # row -> HeaderSeen read from its first segment
        self.stamp = 0
        self.ended: list[np.ndarray] = []  # rows ended in this feed, still in the index
        self.pending: list[np.ndarray] = []  # rows ended, awaiting their output rows
        self.npending = 0
        self.events: list[np.ndarray] = []  # rows closed / fully closed, to schedule
        self.settled: list[tuple[int, int]] = []
        # eviction heap
        self.hd = np.zeros(1024, dtype=np.int64)
        self.hslot = np.zeros(1024, dtype=np.int64)
        self.hser = np.zeros(1024, dtype=np.int64)
        self.hn = np.zeros(1, dtype=np.int64)
        self._out = np.zeros(0, dtype=np.int64)
        self._side = np.zeros(0, dtype=np.int64)
        # TOA variants the loop reads itself: kind -> index of its port+IPv4 client variant
        reg = t.registry
        mask = np.zeros(256, dtype=np.bool_)
        var = np.full(256, -1, dtype=np.int64)
        self.var_names: list[str | None] = []
        for k in reg.kinds:
            if 0 <= k < 256:
                mask[k] = True
                v = reg.lookup(k, 8)
                if v is not None and v.layout == L_PORT_V4 and v.carries == "client":
                    var[k] = len(self.var_names)
                    self.var_names.append(v.name)
        self.toa_mask = mask
        self.toa_var = var
        if not self.compiled:
            self.toa_mask_l = mask.tolist()
            self.toa_var_l = var.tolist()

    def open_count(self) -> int:
        return int(self.ct[self.K.CT_OPEN])

    def next_serial(self) -> int:
        self.ct[self.K.CT_SERIAL] += 1
        return int(self.ct[self.K.CT_SERIAL])

    def adopt(self, objs: _TcpObjects) -> None:
        """Take over the open flows of the per-packet store (between two batches)."""
        t = self.t
        t._machine.closed = None
        flows = list(objs.flows.values())
        if not flows:
            return
        self._reserve(len(flows))
        kk = np.array([fl.key[1:] for fl in flows], dtype=np.uint64).view(np.int64)
        order = {serial: k for k, serial in enumerate(objs.closing)}
        S = self.S
        ct = self.ct
        rows = np.empty(len(flows), dtype=np.int64)
        for q, fl in enumerate(flows):
            top = int(ct[self.K.CT_FREE_TOP]) - 1
            s = int(self.free[top])
            ct[self.K.CT_FREE_TOP] = top
            rows[q] = s
            S[s] = self.tmpl
            S[s, L.K_AHI : L.K_BPORT + 1] = kk[q]
            S[s, L.K_HASH] = row_hash(*kk[q].tolist())
            S[s, L.F_SERIAL] = fl.serial
            self.store(s, fl)
            if fl.closed:
                S[s, L.F_CLOSE_ORDER] = order.get(fl.serial, 0) + 1
        ct[self.K.CT_CLOSES] = len(order) + 1
        ct[self.K.CT_OPEN] += len(flows)
        self._reindex(self.H, S, rows, rows.size)
        # every flow with a deadline (closed ones, attempts) is scheduled: expire skips the rest
        self.events.append(rows.copy())

    # ------------------------------------------------------------------ capacity
    def _reserve(self, n: int) -> None:
        K = self.K
        ct = self.ct
        if ct[K.CT_FREE_TOP] < n:
            old = self.S.shape[0]
            new = max(2 * old, old + n - int(ct[K.CT_FREE_TOP]) + 1024)
            self._grow("S", new)
            self._grow("X", new)
            self._grow("P", new)
            top = int(ct[K.CT_FREE_TOP])
            free = np.empty(new, dtype=np.int64)
            free[:top] = self.free[:top]
            added = np.arange(new - 1, old - 1, -1, dtype=np.int64)
            free[top : top + added.size] = added
            self.free = free
            ct[K.CT_FREE_TOP] = top + added.size
        need = (int(ct[K.CT_OPEN]) + n) * 2
        if need > self.H.shape[0]:
            size = self.H.shape[0]
            while size < need:
                size *= 2
            self.H = np.zeros(size, dtype=np.int64)
            rows = np.flatnonzero(self.S[:, L.F_STATE] == L.ST_OPEN)
            self._reindex(self.H, self.S, rows, rows.size)

    def _grow(self, name: str, rows: int) -> None:
        """Give table ``name`` (S or P) ``rows`` rows, the new ones zero.

        The mapping is extended in place (``mremap``): no copy of the rows in use, and
        the new rows cost memory only once written. A SYN flood's table holds half a
        million open attempts; a copy made to grow it would double the peak. If the
        table is still referenced elsewhere (or the platform cannot remap), it is copied.
        """
        a = getattr(self, name)
        old, width, dtype = a.shape[0], a.shape[1], a.dtype
        setattr(self, name, None)
        del a
        m = self._maps[name]
        try:
            m.resize(rows * width * dtype.itemsize)
        except (BufferError, OSError, SystemError, ValueError):
            m2, b = _mapped(rows, width, dtype)
            b[:old] = np.frombuffer(m, dtype=dtype)[: old * width].reshape(old, width)
            del b
            self._maps[name] = m = m2
        setattr(self, name, np.frombuffer(m, dtype=dtype).reshape(rows, width))

    def _buffers(self, n: int) -> np.ndarray:
        """The loop's out matrix (rows kernel.OUT_*), room for ``n`` packets."""
        if self._out.shape[0] < 8 * n:
            self._out = np.zeros(max(8 * n, 8 * 4096), dtype=np.int64)
        return self._out.reshape(self.K.N_OUT, -1)

    # ------------------------------------------------------------------ packets
    def feed(self, p: Packets, rows: np.ndarray) -> None:
        t = self.t
        K = self.K
        ct = self.ct
        n = rows.size
        kcols: tuple[Any, ...] = (
            p.src_hi.view(np.int64),
            p.src_lo.view(np.int64),
            p.dst_hi.view(np.int64),
            p.dst_lo.view(np.int64),
            p.sport,
            p.dport,
        )
        if self._side.shape[0] < n:
            self._side = np.zeros(max(n, 4096), dtype=np.int64)
        sides = self._side
        pcols = (
            p.frame,
            p.ts_ns,
            p.origlen,
            p.tcp_flags,
            p.seq,
            p.ack,
            p.opt_flags,
            p.opt_off,
            p.opt_len,
            p.caplen,
            p.frame_off,
            p.pay_off,
            p.pay_len,
            p.pay_cap,
        )
        data: Any = p.data
        pidx: Any = rows
        mask: Any = self.toa_mask
        var: Any = self.toa_var
        if not self.compiled:
            kcols = tuple(c.tolist() for c in kcols)
            pcols = tuple(c.tolist() for c in pcols)
            data = memoryview(p.data)
            pidx = rows.tolist()
            mask, var = self.toa_mask_l, self.toa_var_l
        todo = np.arange(n, dtype=np.int64)
        machine = t._machine
        while True:
            m = todo.size
            self._reserve(m)
            out = self._buffers(m)
            out_k, out_slot, out_first, out_ended, out_settled, out_events, out_hk, out_hslot = out
            self.stamp += 1
            ct[K.CT_DEFER] = ct[K.CT_ENDED] = ct[K.CT_SETTLED] = ct[K.CT_EVENTS] = 0
            ct[K.CT_HEADERS] = 0
            self._track(
                todo if self.compiled else todo.tolist(),
                pidx,
                (*kcols, *pcols, data),
                sides,
                self.S,
                self.X,
                self.P,
                self.H,
                self.free,
                self.tmpl,
                (mask, var),
                t.capture,
                self.stamp,
                out,
                ct,
            )
            if self._settle_gc:
                from pcapip.sources import accel

                accel.settle()
                self._settle_gc = False
            S = self.S
            if ct[K.CT_ENDED]:
                self.ended.append(out_ended[: ct[K.CT_ENDED]].copy())
            if ct[K.CT_SETTLED]:
                s_rows = out_settled[: ct[K.CT_SETTLED]]
                self.settled.extend(
                    zip(s_rows.tolist(), S[s_rows, L.F_SERIAL].tolist(), strict=True)
                )
            if ct[K.CT_EVENTS]:
                self.events.append(out_events[: ct[K.CT_EVENTS]].copy())
            nh = int(ct[K.CT_HEADERS])
            if nh:
                self._headers(p, rows, out_hk[:nh].copy(), out_hslot[:nh].copy(), sides, machine)
            nd = int(ct[K.CT_DEFER])
            if nd == 0:
                break
            dk = out_k[:nd].copy()
            dslot = out_slot[:nd].copy()
            first = out_first[:nd] == 1
            fk = dk[first]
            if fk.size:
                c = PacketColumns(p, rows[fk])
                for j, (s, kk) in enumerate(zip(dslot[first].tolist(), fk.tolist(), strict=True)):
                    self._python(p, c, j, s, int(sides[kk]), machine)
                t.per_packet += fk.size
            todo = dk[~first]
            if todo.size == 0:
                break

    def _headers(self, p, rows, hk, hslot, sides, machine: Machine) -> None:
        """Answer the header question of flows whose first segment may start a PROXY header.

        The loop applied these packets except for that question. As
        ``Machine._direct`` does: a segment that decides it alone settles the
        flow here (the decoded header is kept for the row); otherwise the
        flow gets its TcpFlow and the segment starts the stream reassembly.
        """
        from pcapip.flows import headers as hdr

        c = PacketColumns(p, rows[hk])
        S = self.S
        capture = self.t.capture
        for j, s in enumerate(hslot.tolist()):
            data = c.payload(j, c.pcap[j])
            r = hdr.parse(data)
            state = r.state.value
            if state == "ok":
                n = r.length
                if (
                    not (0 < n < len(data))
                    or hdr.parse(data[n:], base=n).state.value != "not-proxy"
                ):
                    state = ""
            if state == "not-proxy":
                S[s, L.F_NO_HEADER] = 1
            elif state in ("ok", "malformed"):
                self.headers[s] = hdr.seen_direct(r, data, c.frame[j], capture)
                S[s, L.F_HEADER] = L.HDR_DICT
            else:
                side = int(sides[hk[j]])
                fl = self.load(s)
                f = c.flags[j]
                machine._stream(
                    fl,
                    c,
                    j,
                    side,
                    c.seq[j],
                    1 if f & TH_SYN else 0,
                    c.frame[j],
                    c.plen[j],
                    c.pcap[j],
                    capture,
                )
                self.store(s, fl)
                if fl.settled:
                    self.settled.append((s, fl.serial))
                continue
            S[s, L.F_SETTLED] = 1
            self.settled.append((s, int(S[s, L.F_SERIAL])))
        self.t.per_packet += hk.size

    def _python(
        self, p: Packets, c: PacketColumns, j: int, s: int, side: int, machine: Machine
    ) -> None:
        """Apply one handed-over packet with the Python rules, on the flow built from its row."""
        fl = self.load(s)
        was_settled, was_closed, was_done = fl.settled, fl.closed, _done(fl.fin_mask)
        was_hs = fl.hs
        machine.tcp(fl, p, c, j, side)
        self.store(s, fl)
        if fl.settled and not was_settled:
            self.settled.append((s, fl.serial))
        if fl.closed and (not was_closed or (_done(fl.fin_mask) and not was_done)):
            K = self.K
            if not was_closed:
                self.ct[K.CT_CLOSES] += 1
                self.S[s, L.F_CLOSE_ORDER] = self.ct[K.CT_CLOSES]
            self.events.append(np.array([s], dtype=np.int64))
        elif fl.hs == HS_PENDING and was_hs != HS_PENDING and not fl.closed:
            self.events.append(np.array([s], dtype=np.int64))  # an attempt: its timeout

    # ------------------------------------------------------------------ row <-> TcpFlow
    def load(self, s: int) -> TcpFlow:
        """The TcpFlow of row ``s``: its Python object brought up to date, or a new one."""
        r = self.S[s].tolist() + self.X[s].tolist()  # all NFIELDS, numbered as in layout
        fl = self.extra.get(s)
        if fl is None:
            key = (
                6,
                r[L.K_AHI] & _MASK64,
                r[L.K_ALO] & _MASK64,
                r[L.K_APORT],
                r[L.K_BHI] & _MASK64,
                r[L.K_BLO] & _MASK64,
                r[L.K_BPORT],
            )
            fl = TcpFlow(key, 0, 0, 0, 0, 0)
            fl.serial = r[L.F_SERIAL]
            for base, attr in (
                (L.TS_SET, "toa_syn"),
                (L.TA_SET, "toa_ack"),
                (L.TD_SET, "toa_data"),
            ):
                if r[base]:
                    ip = r[base + L.T_IP]
                    setattr(
                        fl,
                        attr,
                        ToaSeen(
                            f"{ip >> 24}.{(ip >> 16) & 255}.{(ip >> 8) & 255}.{ip & 255}",
                            r[base + L.T_PORT],
                            r[base + L.T_KIND],
                            r[base + L.T_LEN],
                            self.var_names[r[base + L.T_VAR]],
                            r[base + L.T_FRAME],
                            r[base + L.T_CAP],
                        ),
                    )
        fl.capture = r[L.F_CAPTURE]
        fl.first_frame = r[L.F_FIRST_FRAME]
        fl.start_ns = r[L.F_START]
        fl.end_ns = r[L.F_END]
        fl.first_side = r[L.F_FIRST_SIDE]
        fl.packets = r[L.F_PACKETS]
        fl.bytes = r[L.F_BYTES]
        e = r[L.F_EGRESS]
        fl.egress = None if e < 0 else e
        fl.egress_by = r[L.F_EGRESS_BY]
        v = r[L.F_SYN_SEQ]
        fl.syn_seq = None if v < 0 else v
        fl.synack_seen = bool(r[L.F_SYNACK])
        i0, i1 = r[L.F_ISN0], r[L.F_ISN1]
        fl.isn = [None if i0 < 0 else i0, None if i1 < 0 else i1]
        fl.hs = r[L.F_HS]
        v = r[L.F_HS_FRAME]
        fl.hs_frame = None if v < 0 else v
        fl.hs_capture = r[L.F_HS_CAPTURE]
        fl.hs_opt_len = r[L.F_HS_OPT_LEN]
        fl.hs_toa = bool(r[L.F_HS_TOA])
        fl.closed = bool(r[L.F_CLOSED])
        fl.fin_mask = r[L.F_FIN_MASK]
        closes = []
        for q in range(r[L.F_NCLOSES]):
            b = L.C0_SIDE + q * L.CLOSE_WIDTH
            closes.append(
                (
                    r[b],
                    "rst" if r[b + 1] else "fin",
                    r[b + 2],
                    r[b + 3],
                    bool(r[b + 4]),
                    bool(r[b + 5]),
                )
            )
        fl.closes = closes
        fl.pay_seen = [bool(r[L.F_PAY0]), bool(r[L.F_PAY1])]
        fp: list[tuple[int, int, bytes] | None] = [None, None]
        for side in (0, 1):
            if fl.pay_seen[side]:
                b = L.FP0_FRAME + side * L.FP_WIDTH
                off = side * L.PAYLOAD_KEEP
                fp[side] = (r[b], r[b + 1], self.P[s, off : off + r[b + 2]].tobytes())
        fl.first_pay = fp
        fl.settled = bool(r[L.F_SETTLED])
        fl.no_header = bool(r[L.F_NO_HEADER])
        fl.truncated = bool(r[L.F_TRUNCATED])
        if r[L.F_HEADER] == L.HDR_DICT:
            fl.header = self.headers[s]
        elif r[L.F_HEADER] == L.HDR_ROW:
            fl.header = row_header(r)
        return fl

    def store(self, s: int, fl: TcpFlow) -> None:
        """Write ``fl`` back to row ``s``; keep the object only if it holds Python-only state."""
        closes = [0] * (2 * L.CLOSE_WIDTH)
        for q, cl in enumerate(fl.closes[:2]):
            b = q * L.CLOSE_WIDTH
            closes[b : b + 6] = [
                cl[0],
                1 if cl[1] == "rst" else 0,
                cl[2],
                cl[3],
                int(cl[4]),
                int(cl[5]),
            ]
        fp = [0] * (2 * L.FP_WIDTH)
        P = self.P
        for side in (0, 1):
            x = fl.first_pay[side]
            if x is not None:
                fp[side * L.FP_WIDTH : (side + 1) * L.FP_WIDTH] = [x[0], x[1], len(x[2])]
                off = side * L.PAYLOAD_KEEP
                P[s, off : off + len(x[2])] = np.frombuffer(x[2], dtype=np.uint8)
        isn0, isn1 = fl.isn
        row = [
            fl.capture,
            fl.first_frame,
            fl.start_ns,
            fl.end_ns,
            fl.first_side,
            fl.packets,
            fl.bytes,
            -1 if fl.egress is None else fl.egress,
            fl.egress_by,
            -1 if fl.syn_seq is None else fl.syn_seq,
            int(fl.synack_seen),
            -1 if isn0 is None else isn0,
            -1 if isn1 is None else isn1,
            fl.hs,
            -1 if fl.hs_frame is None else fl.hs_frame,
            fl.hs_capture,
            fl.hs_opt_len,
            int(fl.hs_toa),
            int(fl.closed),
            fl.fin_mask,
            min(len(fl.closes), 2),
            *closes,
            int(fl.pay_seen[0]),
            int(fl.pay_seen[1]),
            *fp,
            int(fl.settled),
            int(fl.no_header),
            int(fl.truncated),
        ]
        S = self.S
        S[s, L.ROW_FIRST : L.ROW_END] = row
        S[s, L.F_BUFFERING] = fl.streams is not None
        keep = (
            fl.findings
            or fl.truncated
            or fl.streams is not None
            or fl.header is not None
            or fl.stacked is not None
            or fl.toa_syn is not None
            or fl.toa_ack is not None
            or fl.toa_data is not None
            or fl.toa_bad
            or fl.incomplete
            or fl.gap
            or fl.base[0] is not None
            or fl.base[1] is not None
            or fl.noheader[0]
            or fl.noheader[1]
        )
        if S[s, L.F_HEADER]:  # the object holds the header from now on
            if S[s, L.F_HEADER] == L.HDR_DICT:
                del self.headers[s]
            S[s, L.F_HEADER] = 0
        if keep:
            self.extra[s] = fl
            S[s, L.F_EXTRA] = 1
        else:
            self.extra.pop(s, None)
            S[s, L.F_EXTRA] = 0
            X, xb = self.X, L.XBASE
            if X[s, L.TS_SET - xb] or X[s, L.TA_SET - xb] or X[s, L.TD_SET - xb]:
                X[s, L.TS_SET - xb] = X[s, L.TA_SET - xb] = X[s, L.TD_SET - xb] = 0

    # ------------------------------------------------------------------ ending
    def evict(self, now: int) -> None:
        ev = np.concatenate(self.events) if self.events else np.zeros(0, dtype=np.int64)
        self.events = []
        n = int(self.hn[0])
        if n == 0 and ev.size == 0:
            return
        need = n + ev.size
        if need > self.hd.shape[0]:
            size = max(need, 2 * self.hd.shape[0])
            for name in ("hd", "hslot", "hser"):
                a = getattr(self, name)
                b = np.zeros(size, dtype=np.int64)
                b[:n] = a[:n]
                setattr(self, name, b)
        out = np.empty(need, dtype=np.int64)
        t = self.t
        k = self._expire(
            ev,
            ev.size,
            self.S,
            self.hd,
            self.hslot,
            self.hser,
            self.hn,
            now,
            t.linger_ns,
            t.evict_ns,
            t.attempt_ns,
            out,
        )
        if k:
            self.ct[self.K.CT_OPEN] -= k
            self.ended.append(out[:k].copy())

    def _end_rows(self, rows: np.ndarray) -> None:
        if rows.size:
            self.S[rows, L.F_STATE] = L.ST_ENDED
            self.ct[self.K.CT_OPEN] -= rows.size
            self.ended.append(rows)

    def end_closed(self, limit: int) -> int:
        S = self.S
        rows = np.flatnonzero((S[:, L.F_STATE] == L.ST_OPEN) & (S[:, L.F_CLOSED] != 0))
        if rows.size > limit:
            rows = rows[np.argsort(S[rows, L.F_CLOSE_ORDER], kind="stable")[:limit]]
        self._end_rows(rows)
        return int(rows.size)

    def oldest_open(self, limit: int) -> list[tuple[int, int, Any]]:
        S = self.S
        rows = np.flatnonzero(S[:, L.F_STATE] == L.ST_OPEN)
        rows = rows[np.argsort(S[rows, L.F_SERIAL], kind="stable")[:limit]]
        return [
            (st, 0, s) for st, s in zip(S[rows, L.F_START].tolist(), rows.tolist(), strict=True)
        ]

    def cut(self, s: int, note: str) -> None:
        fl = self.load(s)
        fl.note(FLOW_LIMIT, note, None, fl.capture)
        self.store(s, fl)
        self._end_rows(np.array([s], dtype=np.int64))

    def end_all(self) -> None:
        self._end_rows(np.flatnonzero(self.S[:, L.F_STATE] == L.ST_OPEN))

    def release(self) -> None:
        """Give the memory of the table's rows back once every row is free (after end_all):
        the pages read as zeros again (every row ST_FREE, as the free stack says), so the
        table build that follows does not sit on top of a flood's half million rows."""
        if self.ct[self.K.CT_OPEN] or self.npending or self.ended or self.extra:
            return
        for m in self._maps.values():
            try:
                m.madvise(mmap.MADV_DONTNEED)
            except (AttributeError, OSError, ValueError):  # not on this platform: keep them
                return

    def still_open(self, item: tuple[int, int]) -> TcpFlow | None:
        s, serial = item
        if self.S[s, L.F_STATE] != L.ST_OPEN or self.S[s, L.F_SERIAL] != serial:
            return None
        return self.load(s)

    def flush(self, cb: OnEnded | None, force: bool) -> None:
        """Take the flows ended in this feed out of the index; turn ended flows into rows
        (and free their table rows) now when asked to or when rows are reported as flows
        end, else once enough have gathered: a block of thousands of rows costs about what
        a block of tens does."""
        t = self.t
        if self.settled:
            t._settled.extend(self.settled)
            self.settled = []
        if self.ended:
            rows = np.concatenate(self.ended) if len(self.ended) > 1 else self.ended[0]
            self.ended = []
            self._unindex(self.H, self.S, rows, rows.size)
            self.pending.append(rows)
            self.npending += rows.size
        if not self.pending or not (force or cb is not None or self.npending >= COMPACT_ROWS):
            return
        rows = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        self.pending = []
        self.npending = 0
        S = self.S
        py = S[rows, L.F_EXTRA] != 0
        plain = rows[~py]
        finish = t._machine.finish_tcp
        for lo in range(0, plain.size, COMPACT_MAX):
            part = plain[lo : lo + COMPACT_MAX]
            block = PackedRows.pack(
                compact_plain(S, self.X, self.P, part, self.headers, t.vocab), t.vocab
            )
            t._keep(block)
            if cb is not None:
                for s, r in zip(part.tolist(), block.to_rows(t.vocab), strict=True):
                    fl = self.load(s)
                    finish(fl)
                    cb(fl, r)
        if py.any():
            out = []
            flows = []
            for s in rows[py].tolist():
                fl = self.load(s)
                finish(fl)
                out.append(compact(fl))
                flows.append(fl)
                del self.extra[s]
            t._keep(out)
            if cb is not None:
                for fl, r in zip(flows, out, strict=True):
                    cb(fl, r)
        if self.headers:
            for s in plain[S[plain, L.F_HEADER] == L.HDR_DICT].tolist():
                del self.headers[s]
        S[rows, L.F_STATE] = L.ST_FREE
        # a free row of X is a zero row (the loop does not reset it for a new flow); rows
        # never written are only read here, which leaves their pages untouched
        X = self.X
        for lo in range(0, rows.size, COMPACT_MAX):  # (a gathered copy per block)
            part = rows[lo : lo + COMPACT_MAX]
            used = part[X[part].any(axis=1)]
            if used.size:
                X[used] = 0
        top = int(self.ct[self.K.CT_FREE_TOP])
        self.free[top : top + rows.size] = rows
        self.ct[self.K.CT_FREE_TOP] = top + rows.size


def parse_trusted(
    spec: str | Sequence[str] | None,
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """``--trusted`` value(s): comma-separated CIDRs (or bare addresses)."""
    if spec is None:
        return None
    items = [spec] if isinstance(spec, str) else list(spec)
    nets = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                from pcapip.errors import UsageError

                raise UsageError(f"--trusted: {part!r} is not an IP address or CIDR") from None
    return nets


def warm_compiled() -> float:
    """Load the compiled flow loops: the ahead-of-time module, or else numba with its
    cached kernels (compiling them on a first-ever run).

    Returns the seconds it took (0.0 when the compiled path is unavailable or
    switched off). A tracker in ``auto`` mode moves to the compiled table as
    soon as numba is loaded, so a long-running reader (live capture) can call
    this in the background and keep analysing meanwhile.
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

    frames = [frame(TH_SYN), frame(0x11)]  # SYN, FIN-ACK
    data = np.frombuffer(b"".join(frames), dtype=np.uint8).copy()
    n = len(frames)
    sizes = np.array([len(f) for f in frames], dtype=np.int64)
    batch = FrameBatch(
        data=data,
        offset=np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
        caplen=sizes,
        origlen=sizes.copy(),
        ts_ns=np.array([0, 10 * NS], dtype=np.int64),
        linktype=np.ones(n, dtype=np.int32),
        iface=np.zeros(n, dtype=np.int32),
        file_offset=np.zeros(n, dtype=np.int64),
        first_frame=1,
    )
    tracker = FlowTracker(backend="compiled", linger=1.0)
    tracker.feed(decode(batch), 0)
    tracker.finish()
    empty = np.zeros(0, dtype=np.int64)
    tcp = tracker._tcp
    assert isinstance(tcp, _TcpRows)
    K.reindex.compiled()(np.zeros(8, dtype=np.int64), tcp.S, empty, 0)
    return time.perf_counter() - t0
