"""The TCP flow table: one int64 row per flow, driven by the compiled loop.

Every TCP flow lives here, for every capture size. ``pcapip.flows.kernel``'s
loop runs over each batch: it finds or creates each packet's flow (port
reuse, an attempt over), applies the common packets itself and hands the
rest to the per-packet rules (``pcapip.flows.machine``), one flow at a time,
in order (:meth:`TcpTable.feed`). A flow whose handling needed Python keeps a
TcpFlow object (``extra``) for what only Python holds (decoded header,
findings, a stream start being reassembled); its row stays the authority for
everything else (``pcapip.flows.rowflow``).

The loop functions are compiled (ahead of time, or numba's JIT) or the
pure-Python twin of the same source: the arrays are the same, so switching
is swapping the function references (and passing lists instead of arrays to
the twin). Without current ahead-of-time kernels, a small capture runs the
twin and never imports numba; once numba is loaded (the decoder loads it for
a large batch) or a batch is large, the table switches to compiled code.
``PCAPIP_PURE_PYTHON=1`` keeps the twin; ``PCAPIP_CHECK_RULES=1`` (a test
switch) makes the loop hand every packet to the rules.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np

from pcapip.decode.columns import Packets
from pcapip.decode.decoder import COMPILE_MIN_PACKETS
from pcapip.flows import layout as L
from pcapip.flows.columnar import compact_plain
from pcapip.flows.deadlines import Schedule, done
from pcapip.flows.machine import Machine, PacketColumns
from pcapip.flows.packed import PackedRows, Vocab
from pcapip.flows.rowflow import load, store
from pcapip.flows.rows import compact
from pcapip.flows.state import HS_PENDING, TcpFlow
from pcapip.flows.tunnels import TunnelCodes
from pcapip.flows.watermark import Watermark
from pcapip.sources import accel


def row_hash(
    a_hi: int, a_lo: int, a_port: int, b_hi: int, b_lo: int, b_port: int, tunnel: int = 0
) -> int:
    """The compiled table's hash of a flow key (addresses as int64 bit patterns), as
    ``pcapip.flows.kernel.track_tcp`` computes it."""
    from pcapip.flows import kernel as K

    m = K._M32
    fa = (a_hi ^ (a_hi >> 32) ^ a_lo ^ (a_lo >> 32) ^ tunnel) & m
    fb = (b_hi ^ (b_hi >> 32) ^ b_lo ^ (b_lo >> 32)) & m
    h = fa * K._K1 + fb * K._K2 + (a_port + b_port * 65536) * K._K3
    return h ^ (h >> 29)


def mapped(rows: int, width: int, dtype: Any) -> tuple[mmap.mmap, np.ndarray]:
    """A zeroed ``rows`` x ``width`` table in anonymous memory (pages become resident
    when first written) and its mapping."""
    m = mmap.mmap(-1, max(1, rows * width * np.dtype(dtype).itemsize), flags=mmap.MAP_PRIVATE)
    return m, np.frombuffer(m, dtype=dtype).reshape(rows, width)


class TcpTable:
    """The open TCP flows as rows of S (what every flow writes), X (what only a flow with a
    TOA option or a PROXY header writes) and P (first payload bytes), plus the hash index H."""

    def __init__(
        self, machine: Machine, registry: Any, attempt_ns: int, tunnels: TunnelCodes
    ) -> None:
        from pcapip.flows import kernel as K

        self.machine = machine  # the per-packet rules, for the packets handed over
        self.tunnels = tunnels  # the flows' tunnel keys (K_TUN) and their texts
        self.capture = 0  # the capture the packets being fed come from
        self.per_packet = 0  # packets the rules applied (a cost counter, not a result)
        self.K = K
        cap = 1024
        # the flow table and the first payload bytes, grown by remapping (see _grow)
        self._maps: dict[str, mmap.mmap] = {}
        self._maps["S"], self.S = mapped(cap, L.XBASE, np.int64)
        self._maps["X"], self.X = mapped(cap, L.NXFIELDS, np.int64)
        self._maps["P"], self.P = mapped(cap, 2 * L.PAYLOAD_KEEP, np.uint8)
        self.H = np.zeros(4096, dtype=np.int64)
        self.free = np.arange(cap - 1, -1, -1, dtype=np.int64)
        self.ct = np.zeros(K.N_COUNTERS, dtype=np.int64)
        self.ct[K.CT_FREE_TOP] = cap
        self.ct[K.CT_ATTEMPT_NS] = attempt_ns
        self.ct[K.CT_EVERY_PACKET] = accel.rules_checked()
        self.tmpl = np.ascontiguousarray(L.template()[: L.XBASE])
        self.extra: dict[int, TcpFlow] = {}
        self.headers: dict[int, Any] = {}  # row -> HeaderSeen read from its first segment
        self.stamp = 0
        self.ended: list[np.ndarray] = []  # rows ended in this feed, still in the index
        self.pending: list[np.ndarray] = []  # rows ended, awaiting their output rows
        self.npending = 0
        self.nwaiting = 0  # of them, rows held back to leave in first-packet order
        self.mark = Watermark()  # how far ended rows can leave in that order
        self.settled: list[tuple[int, int]] = []
        self.due = Schedule()  # when closed flows and attempts are over
        self._out = np.zeros(0, dtype=np.int64)
        self._side = np.zeros(0, dtype=np.int64)
        self._toa_variants(registry)
        self._pure_only = accel.pure_forced()
        self._use(accel.BACKEND_PURE)
        self._choose(0)

    def _toa_variants(self, reg: Any) -> None:
        """TOA variants the loop reads itself: kind -> index of its port+IPv4 client variant."""
        from pcapip.dissect.toa_registry import L_PORT_V4

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
        self.toa_mask, self.toa_var = mask, var
        self.toa_mask_l, self.toa_var_l = mask.tolist(), var.tolist()

    # ------------------------------------------------------------------ which code runs
    def _use(self, backend: str) -> None:
        """Run the loop functions of ``backend`` (the same arrays serve both)."""
        K = self.K
        self.compiled = backend == accel.BACKEND_COMPILED
        self._track = K.track_tcp.get(backend)
        self.expire_fn = K.expire.get(backend)
        self.unindex_fn = K.unindex.get(backend)
        self._rehash = K.rehash.get(backend)
        self.plain_fn = K.plain_rows.get(backend)
        self._settle_gc = self.compiled

    def _choose(self, n: int) -> None:
        """Go compiled once that costs no more start-up (current ahead-of-time kernels, or
        numba already loaded) or the batch is large enough to pay for loading numba."""
        if self._pure_only or not (accel.compiled_cheap() or n >= COMPILE_MIN_PACKETS):
            return
        backend = accel.choose(None, want_compiled=True)
        if backend == accel.BACKEND_COMPILED:
            self._use(backend)

    def expire(self, now: int, linger_ns: int, evict_ns: int, attempt_ns: int) -> None:
        """End the flows whose deadline (see ``pcapip.flows.deadlines``) is before ``now``."""
        rows = self.due.expire(self.expire_fn, self.S, now, linger_ns, evict_ns, attempt_ns)
        if rows.size:
            self.ct[self.K.CT_OPEN] -= rows.size
            self.ended.append(rows)

    def open_count(self) -> int:
        return int(self.ct[self.K.CT_OPEN])

    def next_serial(self) -> int:
        self.ct[self.K.CT_SERIAL] += 1
        return int(self.ct[self.K.CT_SERIAL])

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
            old_index, self.H = self.H, np.zeros(size, dtype=np.int64)
            self._rehash(old_index, self.H)

    def _grow(self, name: str, rows: int) -> None:
        """Give table ``name`` (S, X or P) ``rows`` rows, the new ones zero.

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
            m2, b = mapped(rows, width, dtype)
            b[:old] = np.frombuffer(m, dtype=dtype)[: old * width].reshape(old, width)
            del b
            self._maps[name] = m = m2
        setattr(self, name, np.frombuffer(m, dtype=dtype).reshape(rows, width))

    def release(self) -> None:
        """Give the memory of the table's rows back once every row is free (after every flow
        ended): the pages read as zeros again (every row ST_FREE, as the free stack says), so
        the table build that follows does not sit on top of a flood's half million rows."""
        if self.ct[self.K.CT_OPEN] or self.npending or self.ended or self.extra:
            return
        for m in self._maps.values():
            try:
                m.madvise(mmap.MADV_DONTNEED)
            except (AttributeError, OSError, ValueError):  # not on this platform: keep them
                return

    def _buffers(self, n: int) -> np.ndarray:
        """The loop's out matrix (rows kernel.OUT_*), room for ``n`` packets."""
        if self._out.shape[0] < 8 * n:
            self._out = np.zeros(max(8 * n, 8 * 4096), dtype=np.int64)
        return self._out.reshape(self.K.N_OUT, -1)

    # ------------------------------------------------------------------ packets
    def feed(
        self, p: Packets, rows: np.ndarray, tun: tuple[np.ndarray, np.ndarray], capture: int
    ) -> None:
        """Apply TCP packets ``rows`` of ``p`` (``tun``: tunnel keys and texts per packet of
        ``p``, see ``pcapip.flows.tunnels``; from capture number ``capture``) in capture
        order: the loop applies what it can; the first packet of a flow it hands over goes
        to the rules, and the flow's later ones back through the loop, until none is left."""
        self.capture = capture
        if not self.compiled:
            self._choose(rows.size)
        if self._side.shape[0] < rows.size:
            self._side = np.zeros(max(rows.size, 4096), dtype=np.int64)
        args = self._packet_args(p, rows, tun)
        todo = np.arange(rows.size, dtype=np.int64)
        while todo.size:
            todo = self._round(p, rows, todo, args)

    def _packet_args(
        self, p: Packets, rows: np.ndarray, tun: tuple[np.ndarray, np.ndarray]
    ) -> tuple[Any, ...]:
        """The loop's packet arguments ``pidx``, ``pk`` (kernel.PACKET_COLUMNS) and ``kside``,
        as lists for the twin."""
        kcols: tuple[Any, ...] = (
            p.src_hi.view(np.int64),
            p.src_lo.view(np.int64),
            p.dst_hi.view(np.int64),
            p.dst_lo.view(np.int64),
            p.sport,
            p.dport,
            *tun,
        )
        pcols: tuple[Any, ...] = (
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
        if self.compiled:
            return (rows, (*kcols, *pcols, p.data), self._side)
        kcols = tuple(c.tolist() for c in kcols)
        pcols = tuple(c.tolist() for c in pcols)
        return (rows.tolist(), (*kcols, *pcols, memoryview(p.data)), self._side)

    def _round(
        self, p: Packets, rows: np.ndarray, todo: np.ndarray, args: tuple[Any, ...]
    ) -> np.ndarray:
        """One call of the loop over ``todo``; returns the packets it left for the next one."""
        K = self.K
        ct = self.ct
        m = todo.size
        self._reserve(m)
        top = int(ct[K.CT_FREE_TOP])
        out = self._buffers(m)
        out_k, out_slot, out_first, out_ended, out_settled, out_events, out_hk, out_hslot = out
        self.stamp += 1
        ct[K.CT_DEFER] = ct[K.CT_ENDED] = ct[K.CT_SETTLED] = ct[K.CT_EVENTS] = 0
        ct[K.CT_HEADERS] = 0
        compiled = self.compiled
        self._track(
            todo if compiled else todo.tolist(),
            *args,
            (self.S, self.X, self.P, self.H, self.free, self.tmpl),
            (self.toa_mask, self.toa_var) if compiled else (self.toa_mask_l, self.toa_var_l),
            self.capture,
            self.stamp,
            out,
            ct,
        )
        if self._settle_gc:
            accel.settle()
            self._settle_gc = False
        new = self.free[int(ct[K.CT_FREE_TOP]) : top]
        self.mark.created(self.S, new, int(ct[K.CT_SERIAL]) - new.size + 1, todo.size == rows.size)
        if ct[K.CT_ENDED]:
            self.ended.append(out_ended[: ct[K.CT_ENDED]].copy())
        if ct[K.CT_SETTLED]:
            s_rows = out_settled[: ct[K.CT_SETTLED]]
            self.settled.extend(
                zip(s_rows.tolist(), self.S[s_rows, L.F_SERIAL].tolist(), strict=True)
            )
        if ct[K.CT_EVENTS]:
            self.due.events.append(out_events[: ct[K.CT_EVENTS]].copy())
        nh = int(ct[K.CT_HEADERS])
        if nh:
            self._headers(p, rows, out_hk[:nh].copy(), out_hslot[:nh].copy())
        nd = int(ct[K.CT_DEFER])
        if nd == 0:
            return todo[:0]
        dk = out_k[:nd].copy()
        dslot = out_slot[:nd].copy()
        first = out_first[:nd] == 1
        fk = dk[first]
        if fk.size:
            c = PacketColumns(p, rows[fk])
            sides = self._side
            for j, (s, k) in enumerate(zip(dslot[first].tolist(), fk.tolist(), strict=True)):
                self._python(p, c, j, s, int(sides[k]))
            self.per_packet += fk.size
        return dk[~first]

    def _headers(self, p: Packets, rows: np.ndarray, hk: np.ndarray, hslot: np.ndarray) -> None:
        """Answer the header question of flows whose first segment may start a PROXY header.

        The loop applied these packets except for that question. As
        ``Machine._direct`` does: a segment that decides it alone settles the
        flow here (the decoded header is kept for the row); otherwise the
        flow gets its TcpFlow and the segment starts the stream reassembly.
        """
        from pcapip.flows import headers as hdr

        c = PacketColumns(p, rows[hk])
        S = self.S
        capture = self.capture
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
                self._stream(c, j, s, int(self._side[hk[j]]))
                continue
            S[s, L.F_SETTLED] = 1
            self.settled.append((s, int(S[s, L.F_SERIAL])))
        self.per_packet += hk.size

    def _stream(self, c: PacketColumns, j: int, s: int, side: int) -> None:
        """Start reassembling the stream of row ``s`` with its first segment (packet ``j``)."""
        fl = load(self, s)
        self.machine._stream(fl, c, j, side)
        store(self, s, fl)
        if fl.settled:
            self.settled.append((s, fl.serial))

    def _python(self, p: Packets, c: PacketColumns, j: int, s: int, side: int) -> None:
        """Apply one handed-over packet with the Python rules, on the flow built from its row."""
        fl = load(self, s)
        was_settled, was_closed, was_done = fl.settled, fl.closed, done(fl.fin_mask)
        was_hs = fl.hs
        self.machine.tcp(fl, p, c, j, side)
        store(self, s, fl)
        if fl.settled and not was_settled:
            self.settled.append((s, fl.serial))
        if fl.closed and (not was_closed or (done(fl.fin_mask) and not was_done)):
            K = self.K
            if not was_closed:
                self.ct[K.CT_CLOSES] += 1
                self.S[s, L.F_CLOSE_ORDER] = self.ct[K.CT_CLOSES]
            self.due.events.append(np.array([s], dtype=np.int64))
        elif fl.hs == HS_PENDING and was_hs != HS_PENDING and not fl.closed:
            self.due.events.append(np.array([s], dtype=np.int64))  # an attempt: its timeout

    def previews(self, items: list[tuple[int, int]], vocab: Vocab) -> list[PackedRows]:
        """The rows the flows (row, serial) ``items`` still open would get if they ended now:
        plain rows column by column (``columnar.compact_plain``), the others through their
        TcpFlow (``rows.compact``). Nothing in the table changes."""
        if not items:
            return []
        s, serial = np.array(items, dtype=np.int64).T
        s = s[(self.S[s, L.F_STATE] == L.ST_OPEN) & (self.S[s, L.F_SERIAL] == serial)]
        py = self.S[s, L.F_EXTRA] != 0
        out = []
        if (~py).any():
            block = compact_plain(self, s[~py], vocab)
            out.append(PackedRows.pack(block, vocab))
        if py.any():
            rows = [compact(load(self, r)) for r in s[py].tolist()]
            out.append(PackedRows.from_rows(rows, vocab))
        return out

    def still_open(self, item: tuple[int, int]) -> TcpFlow | None:
        """The flow of (row, serial) if it is still open."""
        s, serial = item
        if self.S[s, L.F_STATE] != L.ST_OPEN or self.S[s, L.F_SERIAL] != serial:
            return None
        return load(self, s)
