"""Flows: from decoded packet columns to one state object per connection.

Most packets of a capture cannot change the answer to "who is the client":
a bulk data segment in the middle of a download only adds to the flow's
counters. So each batch is grouped by flow with numpy, and only the packets
that can matter go through the per-packet state machine in Python:

* SYN, FIN and RST segments, and the egress side's first segment after the SYN
  (the handshake-completing ACK, the one TOA modules read);
* segments with an option of a TOA kind (the decoder flags them);
* payload of flows whose header question is still open, and the first payload
  of each side (to see the origin's reply to a header);
* every packet of a flow the batch creates or may replace (port reuse);
* UDP datagrams (each may carry its own PROXY v2 header).

Every other packet is summed per flow in bulk. ``mode="reference"`` sends
every packet through the state machine instead; the tests compare both modes
on the same captures, so the selection above is checked, not trusted.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from pcapip.decode.columns import (
    OPT_TOA_CANDIDATE,
    ST_BAD_HEADER,
    ST_FRAGMENT,
    ST_NOT_IP,
    ST_NOT_TCP_UDP,
    ST_TRUNCATED,
    ST_UNKNOWN_LINK,
    TH_ACK,
    TH_FIN,
    TH_RST,
    TH_SYN,
    Packets,
)
from pcapip.flows import fastparse
from pcapip.flows import headers as hdr
from pcapip.flows.reassembly import StreamStart, seq_offset
from pcapip.flows.state import (
    BY_FIRST,
    BY_HEADER,
    BY_SYN,
    BY_SYNACK,
    BY_TOA,
    HS_DONE,
    HS_FAILED,
    HS_NONE,
    HS_PENDING,
    TcpFlow,
    ToaSeen,
    UdpFlow,
)

UNUSABLE = ST_UNKNOWN_LINK | ST_NOT_IP | ST_FRAGMENT | ST_NOT_TCP_UDP | ST_BAD_HEADER
NS = 1_000_000_000
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_S31 = np.uint64(31)


def _mix(h: np.ndarray, v: np.ndarray) -> np.ndarray:
    h = (h ^ v) * _M1
    return h ^ (h >> _S31)


class FlowTracker:
    """Feeds on decoded batches; ``finish`` returns the flows found.

    ``trusted`` is only recorded here; the report applies it. ``udp_timeout``
    ends a UDP flow after that many idle seconds. TCP flows closed in both
    directions (or reset) become compact rows after ``linger`` quiet seconds
    of capture time, half-closed ones after ``evict_after``, so a long capture
    holds state only for connections that are still open.
    """

    def __init__(
        self,
        *,
        registry: Any = None,
        mode: str = "fast",
        udp_timeout: float = 60.0,
        evict_after: float = 120.0,
        linger: float = 2.0,
        stream_limit: int = 65_600,
    ) -> None:
        if mode not in ("fast", "reference"):
            raise ValueError(f"mode must be 'fast' or 'reference', not {mode!r}")
        from pcapip.dissect import DEFAULT_REGISTRY

        self.registry = registry if registry is not None else DEFAULT_REGISTRY
        self.mode = mode
        self.udp_timeout_ns = int(udp_timeout * NS)
        self.evict_ns = int(evict_after * NS)
        self.linger_ns = int(linger * NS)
        self.stream_limit = stream_limit
        self.tcp: dict[tuple, TcpFlow] = {}
        self.udp: dict[tuple, UdpFlow] = {}
        self.ended: list[Any] = []  # FlowRow (compacted)
        self._closing: deque[TcpFlow] = deque()
        self._udp_order: deque[UdpFlow] = deque()
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
            "packets_per_packet_path": 0,
        }

    # ------------------------------------------------------------------ batches
    def feed(self, p: Packets, capture: int = 0) -> None:
        """Add one decoded batch (packets in capture order)."""
        n = len(p)
        if n == 0:
            return
        self.capture = capture
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
        st["packets_undecoded"] += int(n - np.count_nonzero(usable))
        idx = np.flatnonzero(usable)
        if idx.size == 0:
            return
        is_tcp_all = proto[idx] == 6
        st["packets_tcp"] += int(np.count_nonzero(is_tcp_all))
        st["packets_udp"] += int(idx.size - np.count_nonzero(is_tcp_all))
        self.linktypes.update(np.unique(p.linktype[idx]).tolist())

        # canonical endpoints: A is the smaller (address, port), side 0 = sent by A
        src_hi, src_lo, dst_hi, dst_lo = p.src_hi[idx], p.src_lo[idx], p.dst_hi[idx], p.dst_lo[idx]
        sport, dport = p.sport[idx].astype(np.uint64), p.dport[idx].astype(np.uint64)
        src_first = (src_hi < dst_hi) | (
            (src_hi == dst_hi) & ((src_lo < dst_lo) | ((src_lo == dst_lo) & (sport <= dport)))
        )
        a_hi = np.where(src_first, src_hi, dst_hi)
        a_lo = np.where(src_first, src_lo, dst_lo)
        b_hi = np.where(src_first, dst_hi, src_hi)
        b_lo = np.where(src_first, dst_lo, src_lo)
        a_port = np.where(src_first, sport, dport)
        b_port = np.where(src_first, dport, sport)
        side = (~src_first).astype(np.int8)
        pr = proto[idx].astype(np.uint64)
        h = np.full(idx.size, np.uint64(0x243F6A8885A308D3))
        for col in (pr, a_hi, a_lo, a_port | (b_port << np.uint64(16)), b_hi, b_lo):
            h = _mix(h, col)
        h = h * _M2
        cols = (pr, a_hi, a_lo, a_port, b_hi, b_lo, b_port)
        order = np.argsort(h, kind="stable")
        hs = h[order]
        boundary = np.r_[True, hs[1:] != hs[:-1]]
        starts = np.flatnonzero(boundary)
        gsorted = np.cumsum(boundary) - 1
        # a 64-bit hash collision inside the batch: fall back to exact grouping
        for c in cols:
            cs = c[order]
            if not np.array_equal(cs, cs[starts][gsorted]):
                order = np.lexsort(cols[::-1])
                keys = np.stack([c[order] for c in cols])
                starts = np.flatnonzero(np.r_[True, np.any(keys[:, 1:] != keys[:, :-1], axis=0)])
                break
        ngroups = starts.size
        group_sorted = np.repeat(np.arange(ngroups), np.diff(np.r_[starts, idx.size]))
        group = np.empty(idx.size, np.int64)
        group[order] = group_sorted

        flags = p.tcp_flags[idx]
        tcp = is_tcp_all
        pay = p.pay_len[idx] > 0
        keys = self._group_keys(starts, order, cols)
        if self.mode == "reference":
            special = np.ones(idx.size, bool)
        else:
            special = self._select(p, idx, group, keys, side, tcp, flags, pay, order, starts)

        sel = np.flatnonzero(special)
        st["packets_per_packet_path"] += int(sel.size)
        self._per_packet(p, idx, sel, side, tcp, group, keys, capture)
        if sel.size < idx.size:
            self._bulk(p, idx, ~special, group, keys, tcp)
        self._evict(int(p.ts_ns[idx].max()))

    def _group_keys(
        self, starts: np.ndarray, order: np.ndarray, cols: Sequence[np.ndarray]
    ) -> list[tuple]:
        first = order[starts]
        lists = [c[first].tolist() for c in cols]
        return list(zip(*lists, strict=True))

    def _select(self, p, idx, group, keys, side, tcp, flags, pay, order, starts) -> np.ndarray:
        """Which packets of this batch must go through the per-packet state machine.

        Everything that can change a flow's answer, and nothing that cannot
        (see the module docstring); a packet selected needlessly costs time,
        a packet missed would change the result, so when unsure, select.
        """
        n = idx.size
        f = flags
        syn = tcp & ((f & TH_SYN) != 0)
        pure_syn = syn & ((f & TH_ACK) == 0)
        synack = syn & ((f & TH_ACK) != 0)
        close = tcp & ((f & (TH_FIN | TH_RST)) != 0)
        special = ~tcp | syn | close | ((p.opt_flags[idx] & OPT_TOA_CANDIDATE) != 0)
        ngroups = len(keys)
        seq = p.seq[idx].astype(np.int64)
        ack = p.ack[idx].astype(np.int64)
        # per group, from this batch: the first pure SYN (side, seq), the first SYN-ACK,
        # and whether a pure SYN follows a FIN/RST (port reuse inside the batch)
        arange = np.arange(n)
        g_syn_at = np.full(ngroups, -1)
        g_synack_at = np.full(ngroups, -1)
        complex_g = np.zeros(ngroups, bool)
        if pure_syn.any():
            at = np.flatnonzero(pure_syn)
            u, first = np.unique(group[at], return_index=True)
            g_syn_at[u] = at[first]
            last_syn = np.full(ngroups, -1)
            np.maximum.at(last_syn, group[at], at)
            first_close = np.full(ngroups, n)
            cat = np.flatnonzero(close)
            if cat.size:
                np.minimum.at(first_close, group[cat], cat)
            complex_g |= last_syn > first_close
            pairs = np.unique((group[at].astype(np.int64) << 32) | seq[at])
            gg, cnt = np.unique(pairs >> 32, return_counts=True)
            complex_g[gg[cnt > 1]] = True
        if synack.any():
            at = np.flatnonzero(synack)
            u, first = np.unique(group[at], return_index=True)
            g_synack_at[u] = at[first]
        g_syn_at_l = g_syn_at.tolist()
        g_synack_at_l = g_synack_at.tolist()
        side_l = side.tolist() if ngroups else []
        # per-group facts at batch start
        g_first = np.zeros(ngroups, bool)
        g_pay = np.zeros((ngroups, 2), bool)  # payload of this side may matter
        g_isn = np.full((ngroups, 2), -1, np.int64)  # stream offset 0 - 1 of this side, if known
        g_first_pay = np.zeros((ngroups, 2), bool)
        g_first_side = np.zeros((ngroups, 2), bool)
        is_tcp_g = [k[0] == 6 for k in keys]
        tcpd = self.tcp
        for g, key in enumerate(keys):
            if not is_tcp_g[g]:
                continue  # UDP: every datagram is special already
            fl = tcpd.get(key)
            sa, ka = g_syn_at_l[g], g_synack_at_l[g]
            if fl is None:
                g_first[g] = True
                g_first_pay[g] = True
                if sa >= 0:
                    e = side_l[sa]
                    g_pay[g, e] = True
                    g_isn[g, e] = seq[sa]
                elif ka >= 0:
                    e = 1 - side_l[ka]
                    g_pay[g, e] = True
                    g_isn[g, e] = (ack[ka] - 1) & 0xFFFFFFFF
                else:
                    g_pay[g] = True
                continue
            if sa >= 0:
                complex_g[g] = True  # a SYN on a known flow: retransmission or port reuse
                continue
            if not fl.settled:
                e = fl.egress
                if e is None:
                    if ka >= 0:
                        complex_g[g] = True
                    g_pay[g] = True
                else:
                    g_pay[g, e] = True
                    if fl.isn[e] is not None:
                        g_isn[g, e] = fl.isn[e]
                    elif ka >= 0 and e == 1 - side_l[ka]:
                        g_isn[g, e] = (ack[ka] - 1) & 0xFFFFFFFF
            ps = fl.pay_seen
            g_first_pay[g, 0] = not ps[0]
            g_first_pay[g, 1] = not ps[1]
            if fl.hs == HS_PENDING and fl.egress is not None:
                g_first_side[g, fl.egress] = True
        special |= complex_g[group]
        # payload that can still reach the header: within the first stream_limit bytes
        cand = pay & g_pay[group, side]
        isn = g_isn[group, side]
        off = (seq + syn - isn - 1) & 0xFFFFFFFF
        special |= cand & ((isn < 0) | (off < self.stream_limit) | (off >= 1 << 31))
        first_pkt = np.zeros(n, bool)
        first_pkt[order[starts]] = True
        special |= tcp & g_first[group] & first_pkt
        # packets sorted by (group, side, index): runs give the first packet per side
        gs_code = group * 2 + side
        # ``order`` already sorts by group, then index: a stable sort on the nearly
        # sorted (group, side) codes is cheap and keeps index order within each run
        o = order[np.argsort(gs_code[order], kind="stable")]
        codes_sorted = gs_code[o]
        run_start = np.r_[True, codes_sorted[1:] != codes_sorted[:-1]]
        first_gs = np.zeros(n, bool)
        first_gs[o[run_start]] = True
        special |= tcp & first_gs & g_first_side[group, side]
        op = o[pay[o] & tcp[o]]  # payload packets, same order
        if op.size:
            cp = gs_code[op]
            fp = np.zeros(n, bool)
            fp[op[np.r_[True, cp[1:] != cp[:-1]]]] = True
            special |= fp & g_first_pay[group, side]
        # the egress side's next packet after a SYN, and the other side's next after a SYN-ACK
        if pure_syn.any() or synack.any():
            pos = np.empty(n, np.int64)
            pos[o] = arange
            key_sorted = codes_sorted.astype(np.int64) * (n + 1) + o
            for mask, other in ((pure_syn, False), (synack, True)):
                at = np.flatnonzero(mask)
                if not at.size:
                    continue
                want = (gs_code[at] ^ 1) if other else gs_code[at]
                if other:
                    q = want.astype(np.int64) * (n + 1) + at
                    j = np.searchsorted(key_sorted, q, side="right")
                else:
                    j = pos[at] + 1
                ok = j < n
                j, want = j[ok], want[ok]
                hit = codes_sorted[j] == want
                special[o[j[hit]]] = True
        return special

    # ------------------------------------------------------------------ bulk counting
    def _bulk(self, p, idx, mask, group, keys, tcp) -> None:
        rows = np.flatnonzero(mask)
        g = group[rows]
        ngroups = len(keys)
        cnt = np.bincount(g, minlength=ngroups)
        nbytes = np.bincount(g, weights=p.origlen[idx[rows]], minlength=ngroups)
        ts = p.ts_ns[idx[rows]]
        tmax = np.full(ngroups, np.iinfo(np.int64).min)
        tmin = np.full(ngroups, np.iinfo(np.int64).max)
        np.maximum.at(tmax, g, ts)
        np.minimum.at(tmin, g, ts)
        present = np.flatnonzero(cnt)
        tcpd = self.tcp
        for gi, c, b, lo, hi in zip(
            present.tolist(),
            cnt[present].tolist(),
            nbytes[present].tolist(),
            tmin[present].tolist(),
            tmax[present].tolist(),
            strict=True,
        ):
            fl = tcpd.get(keys[gi])
            if fl is None:  # cannot happen: the first packet of a new flow is special
                raise AssertionError(f"bulk packets for an unknown flow {keys[gi]}")
            fl.packets += c
            fl.bytes += int(b)
            if lo < fl.start_ns:
                fl.start_ns = lo
            if hi > fl.end_ns:
                fl.end_ns = hi

    # ------------------------------------------------------------------ per packet
    def _per_packet(self, p: Packets, idx, sel, side, tcp, group, keys, capture: int) -> None:
        if sel.size == 0:
            return
        rows = idx[sel]
        self._buf = memoryview(p.data)
        fo = p.frame_off[rows]
        self._pstart = (fo + p.pay_off[rows]).tolist()
        oo = p.opt_off[rows]
        self._ostart = (fo + oo).tolist()
        self._ocap = np.maximum(0, np.minimum(p.opt_len[rows], p.caplen[rows] - oo)).tolist()
        frame, ts, olen = p.frame[rows].tolist(), p.ts_ns[rows].tolist(), p.origlen[rows].tolist()
        flags, seq, ack = p.tcp_flags[rows].tolist(), p.seq[rows].tolist(), p.ack[rows].tolist()
        optf, optlen = p.opt_flags[rows].tolist(), p.opt_len[rows].tolist()
        plen, pcap = p.pay_len[rows].tolist(), p.pay_cap[rows].tolist()
        sides = side[sel].tolist()
        istcp = tcp[sel].tolist()
        grp = group[sel].tolist()
        rowl = rows.tolist()
        tcp_packet, udp_packet = self._tcp_packet, self._udp_packet
        for j in range(len(rowl)):
            if istcp[j]:
                tcp_packet(
                    p,
                    rowl[j],
                    j,
                    keys[grp[j]],
                    sides[j],
                    frame[j],
                    ts[j],
                    olen[j],
                    flags[j],
                    seq[j],
                    ack[j],
                    optf[j],
                    optlen[j],
                    plen[j],
                    pcap[j],
                    capture,
                )
            else:
                udp_packet(
                    p,
                    rowl[j],
                    j,
                    keys[grp[j]],
                    sides[j],
                    frame[j],
                    ts[j],
                    olen[j],
                    plen[j],
                    pcap[j],
                    capture,
                )

    def _new_tcp(self, key, side, frame, ts, capture) -> TcpFlow:
        fl = TcpFlow(key, capture, frame, ts, ts, side)
        self.tcp[key] = fl
        return fl

    def _payload(self, j: int, n: int) -> bytes:
        s = self._pstart[j]
        return bytes(self._buf[s : s + n])

    def _options(self, j: int) -> bytes:
        s = self._ostart[j]
        return bytes(self._buf[s : s + self._ocap[j]])

    def _tcp_packet(
        self, p, i, j, key, side, frame, ts, olen, f, seq, ack, optf, optlen, plen, pcap, capture
    ) -> None:
        fl = self.tcp.get(key)
        syn = f & TH_SYN
        pure_syn = syn and not (f & TH_ACK)
        if fl is None:
            fl = self._new_tcp(key, side, frame, ts, capture)
        elif pure_syn and (fl.closed or (fl.syn_seq is not None and seq != fl.syn_seq)):
            self._end_tcp(fl)
            fl = self._new_tcp(key, side, frame, ts, capture)
        fl.packets += 1
        fl.bytes += olen
        if ts < fl.start_ns:
            fl.start_ns = ts
        if ts > fl.end_ns:
            fl.end_ns = ts

        is_hs = False
        if pure_syn:
            if fl.syn_seq is None:
                fl.syn_seq = seq
                fl.isn[side] = seq
                fl.egress, fl.egress_by = side, BY_SYN
                if fl.hs == HS_NONE:
                    fl.hs = HS_PENDING
            elif fl.hs == HS_PENDING:
                pass
        elif syn:  # SYN-ACK
            if not fl.synack_seen:
                fl.synack_seen = True
                fl.isn[side] = seq
                if fl.syn_seq is None:
                    fl.egress, fl.egress_by = 1 - side, BY_SYNACK
                    fl.isn[1 - side] = (ack - 1) & 0xFFFFFFFF
                    if fl.hs == HS_NONE:
                        fl.hs = HS_PENDING
        elif fl.hs == HS_PENDING and side == fl.egress:
            is_hs = True
            fl.hs = HS_DONE if (f & TH_ACK) and not (f & TH_RST) else HS_FAILED
            fl.hs_frame, fl.hs_capture, fl.hs_opt_len = frame, capture, optlen
            if optlen and self._ocap[j] < optlen:
                fl.truncated = True
                fl.note(
                    "capture.truncated",
                    "TCP options of the handshake ACK cut by the snap length",
                    frame,
                    capture,
                )

        if optf & OPT_TOA_CANDIDATE:
            self._toa(
                fl,
                p,
                i,
                j,
                side,
                frame,
                capture,
                optlen,
                "syn" if pure_syn else ("ack" if is_hs else "data"),
            )

        if plen > 0:
            if not fl.pay_seen[side]:
                fl.pay_seen[side] = True
                fl.first_pay[side] = (frame, capture, self._payload(j, min(pcap, 16)))
            if not fl.settled and (fl.egress is None or fl.egress == side):
                self._stream(fl, j, side, seq, 1 if syn else 0, frame, plen, pcap, capture)

        if f & (TH_FIN | TH_RST):
            if len(fl.closes) < 2:
                fl.closes.append(
                    (
                        side,
                        "rst" if f & TH_RST else "fin",
                        frame,
                        capture,
                        fl.pay_seen[0],
                        fl.pay_seen[1],
                    )
                )
            fl.fin_mask |= 4 if f & TH_RST else 1 << side
            if not fl.closed:
                fl.closed = True
                self._closing.append(fl)

    def _toa(self, fl: TcpFlow, p, i, j, side, frame, capture, optlen, phase: str) -> None:
        raw = self._options(j)
        quick = fastparse.toa(raw, self.registry)
        if fl.egress is not None and side != fl.egress:
            if quick is not None:
                kind = quick[2]
            else:
                from pcapip.dissect import dissect_tcp_options

                opts = dissect_tcp_options(raw, registry=self.registry).options
                if not opts:
                    return  # e.g. the standard User Timeout option (kind 28, length 4)
                kind = opts[0].kind
            fl.note(
                "toa.from_origin",
                f"a TOA-kind option (kind {kind}) sent by the origin side",
                frame,
                capture,
            )
            return
        if len(raw) < optlen:
            fl.truncated = True
            fl.note("capture.truncated", "TCP options cut by the snap length", frame, capture)
        if quick is not None:
            seen = ToaSeen(quick[0], quick[1], quick[2], quick[3], quick[4], frame, capture)
        else:
            from pcapip.dissect import dissect_tcp_options

            res = dissect_tcp_options(
                raw,
                base_offset=int(p.opt_off[i]),
                registry=self.registry,
                ip_version=int(p.ipver[i]) or None,
            )
            for code, message in hdr.toa_problems(res):
                fl.toa_bad = fl.toa_bad or code == "toa.malformed"
                fl.note(code, message, frame, capture)
            if res.client_ip is None:
                return
            opt = next((o for o in res.options if o.reached and o.client_ip == res.client_ip), None)
            seen = ToaSeen(
                res.client_ip,
                res.client_port,
                opt.kind if opt else 0,
                opt.length if opt else 0,
                opt.variant.name if opt is not None and opt.variant is not None else None,
                frame,
                capture,
            )
        if fl.egress is None:
            fl.egress, fl.egress_by = side, BY_TOA
        prev = fl.toa
        if prev is not None and (prev.client_ip, prev.client_port) != (
            seen.client_ip,
            seen.client_port,
        ):
            fl.note(
                "toa.inconsistent",
                f"packet {frame} carries {hdr.hostport(seen.client_ip, seen.client_port)}, "
                f"packet {prev.frame} carried {hdr.hostport(prev.client_ip, prev.client_port)}",
                frame,
                capture,
            )
        if phase == "syn":
            if fl.toa_syn is None:
                fl.toa_syn = seen
        elif phase == "ack":
            fl.toa_ack = seen
            fl.hs_toa = True
        elif fl.toa_data is None:
            fl.toa_data = seen

    # ------------------------------------------------------------------ stream start
    def _stream(self, fl: TcpFlow, j, side, seq, synlen, frame, plen, pcap, capture) -> None:
        isn = fl.isn[side]
        direct = fl.streams is None and fl.egress == side and isn is not None
        if direct:
            off = seq_offset(seq + synlen, (isn + 1) & 0xFFFFFFFF)
            # the usual case: the whole header (and what follows) in the first segment
            if (
                off == 0
                and pcap == plen
                and self._direct(fl, self._payload(j, pcap), frame, capture)
            ):
                return
        if fl.streams is None:
            fl.streams = [None, None]
        stream = fl.streams[side]
        if stream is None:
            stream = fl.streams[side] = StreamStart(self.stream_limit)
        if isn is not None and fl.egress == side:
            off = seq_offset(seq + synlen, (isn + 1) & 0xFFFFFFFF)
        else:
            if fl.base[side] is None:
                fl.base[side] = (seq + synlen) & 0xFFFFFFFF
            off = seq_offset(seq + synlen, fl.base[side])
        stream.add(off, self._payload(j, pcap), frame, missing=plen - pcap, capture=capture)
        self._check_stream(fl, side, final=False)

    def _direct(self, fl: TcpFlow, data: bytes, frame: int, capture: int) -> bool:
        """Settle from one in-order first segment when it decides everything; False otherwise."""
        r = hdr.parse(data)
        state = r.state.value
        if state == "not-proxy":
            fl.no_header = True
            fl.settled = True
            return True
        if state == "malformed":
            fl.header = hdr.seen_direct(r, data, frame, capture)
            fl.settled = True
            return True
        if state == "ok" and 0 < r.length < len(data):
            if hdr.parse(data[r.length :], base=r.length).state.value != "not-proxy":
                return False
            fl.header = hdr.seen_direct(r, data, frame, capture)
            fl.settled = True
            return True
        return False

    def _check_stream(self, fl: TcpFlow, side: int, *, final: bool) -> None:
        """Try to settle the header question from what side ``side`` has sent so far."""
        stream = fl.streams[side] if fl.streams else None
        if stream is None or fl.settled:
            return
        data = bytes(stream.prefix)
        stuck = stream.stuck
        if fl.header is not None:  # header known: only the stacked-header question is open
            rest = data[fl.header.length :]
            second = hdr.parse(rest, base=fl.header.length) if rest else None
            if second is not None and second.state.value in ("ok", "malformed"):
                fl.stacked = hdr.seen(second, stream, fl.header.length)
            elif second is not None and second.state.value == "need-more":
                if not (final or stuck or len(rest) >= 16):
                    return
                fl.stacked = hdr.seen(second, stream, fl.header.length)
            elif not rest and not (final or stuck):
                return
            self._settle(fl)
            return
        if not data:
            if (final or stuck) and fl.egress == side:
                if stuck:
                    fl.truncated = True
                elif stream.has_gap:
                    fl.gap = True
                self._settle(fl)
            return
        r = hdr.parse(data)
        state = r.state.value
        if state == "not-proxy":
            if fl.egress is None:
                fl.noheader[side] = True
                if fl.noheader[0] and fl.noheader[1]:
                    self._settle(fl)
                elif final:
                    pass
                return
            fl.no_header = True
            self._settle(fl)
            return
        if state == "need-more":
            if final or stuck or (stream.has_gap and final):
                if fl.egress is None:
                    fl.egress, fl.egress_by = side, BY_HEADER
                fl.header = hdr.seen(r, stream, 0)
                fl.incomplete = True
                if stuck:
                    fl.truncated = True
                self._settle(fl)
            return
        if fl.egress is None:
            fl.egress, fl.egress_by = side, BY_HEADER
        fl.header = hdr.seen(r, stream, 0)
        if state == "malformed" or r.length <= 0:
            self._settle(fl)
            return
        self._check_stream(fl, side, final=final)

    def _settle(self, fl: TcpFlow) -> None:
        fl.settled = True
        if fl.streams is not None:
            c = fl.streams[fl.egress] if fl.egress is not None else None
            if c is not None:
                if c.conflict_frame is not None:
                    fl.note(
                        "stream.overlap_conflict",
                        "a retransmitted segment carries different bytes for the stream start",
                        c.conflict_frame,
                        self.capture,
                    )
                if c.stuck:
                    fl.truncated = True
            fl.streams = None

    # ------------------------------------------------------------------ UDP
    def _udp_packet(self, p, i, j, key, side, frame, ts, olen, plen, pcap, capture) -> None:
        fl = self.udp.get(key)
        if fl is None or ts - fl.end_ns > self.udp_timeout_ns:
            if fl is not None:
                self._end_udp(fl)
            fl = UdpFlow(key, capture, frame, ts, ts, side, egress=side, egress_by=BY_FIRST)
            self.udp[key] = fl
            self._udp_order.append(fl)
        fl.packets += 1
        fl.bytes += olen
        if ts < fl.start_ns:
            fl.start_ns = ts
        if ts > fl.end_ns:
            fl.end_ns = ts
        if plen <= 0 or (fl.confirmed and side != fl.egress):
            return
        data = self._payload(j, pcap)
        r = hdr.parse(data, final=True)
        state = r.state.value
        if state == "not-proxy":
            if side == fl.egress and fl.headers_ok + fl.headers_bad:
                fl.missing += 1
                fl.note(
                    "udp.header_missing",
                    "datagram from the egress side without a PROXY header",
                    frame,
                    capture,
                )
            return
        if not fl.confirmed:
            if side != fl.egress and fl.headers_ok + fl.headers_bad == 0:
                fl.egress, fl.egress_by = side, BY_HEADER
            fl.confirmed = True
            if side != fl.egress:
                return
        seen = hdr.seen_datagram(r, frame, capture)
        if plen > pcap and state != "ok":
            fl.note(
                "capture.truncated",
                "datagram cut by the snap length inside the PROXY header",
                frame,
                capture,
            )
        if state != "ok":
            fl.headers_bad += 1
            if fl.first_bad is None:
                fl.first_bad = seen
                code, msg = hdr.malformed_finding(seen)
                fl.note(code, msg, frame, capture)
            return
        fl.headers_ok += 1
        h = r.header
        if fl.header is None:
            fl.header = seen
            return
        first = fl.header.header
        if (h.src_addr, h.src_port) != (first.src_addr, first.src_port):
            fl.changed += 1
            fl.note(
                "udp.client_changed",
                f"datagram announces client {hdr.hostport(h.src_addr, h.src_port)}, the flow's "
                f"first header announced {hdr.hostport(first.src_addr, first.src_port)}",
                frame,
                capture,
            )

    # ------------------------------------------------------------------ ending flows
    def _end_tcp(self, fl: TcpFlow) -> None:
        if self.tcp.get(fl.key) is fl:
            del self.tcp[fl.key]
        self._finish_tcp(fl)
        from pcapip.flows.rows import compact

        self.ended.append(compact(fl))

    def _end_udp(self, fl: UdpFlow) -> None:
        if self.udp.get(fl.key) is fl:
            del self.udp[fl.key]
        from pcapip.flows.rows import compact

        self.ended.append(compact(fl))

    def _finish_tcp(self, fl: TcpFlow) -> None:
        if fl.settled:
            return
        if fl.streams is not None:
            order = [fl.egress] if fl.egress is not None else [0, 1]
            for s in order:
                self._check_stream(fl, s, final=True)
                if fl.settled:
                    return
        fl.settled = True
        fl.streams = None

    def _evict(self, now: int) -> None:
        """Compact TCP flows that are over and UDP flows that timed out.

        A connection closed in both directions (or reset) is over once it has
        been quiet for ``linger`` seconds of capture time (time enough for the
        last retransmissions); a half-closed one after ``evict_after``. Keeping
        only live connections in memory is what keeps a long capture's memory
        flat.
        """
        if self._closing:
            keep: deque[TcpFlow] = deque()
            tcpd = self.tcp
            linger, evict = now - self.linger_ns, now - self.evict_ns
            for fl in self._closing:
                if tcpd.get(fl.key) is not fl:
                    continue  # replaced (port reuse) and compacted already
                done = fl.fin_mask & 4 or fl.fin_mask == 3
                if fl.end_ns < (linger if done else evict):
                    self._end_tcp(fl)
                else:
                    keep.append(fl)
            self._closing = keep
        u = self._udp_order
        ulimit = now - self.udp_timeout_ns
        while u:
            fl = u[0]
            if self.udp.get(fl.key) is not fl:
                u.popleft()
                continue
            if fl.end_ns >= ulimit:
                break
            u.popleft()
            self._end_udp(fl)

    def finish(self) -> list[Any]:
        """Compact every flow still open; returns all rows (unordered)."""
        for fl in list(self.tcp.values()):
            self._end_tcp(fl)
        for fl in list(self.udp.values()):
            self._end_udp(fl)
        rows, self.ended = self.ended, []
        return rows


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
