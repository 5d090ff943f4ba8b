"""The per-packet state machine: what one packet changes in its flow.

This is the definition of the flow stage's behaviour. The compiled loop
(``pcapip.flows.kernel``) handles the common packets itself and hands this
machine the packets whose handling needs Python (a PROXY header to parse, a
TOA option it cannot read cleanly, a stream start to reassemble, a UDP
datagram, anything odd). With ``PCAPIP_CHECK_RULES=1`` (a test switch) the
loop hands it every packet, and the tests compare both runs on every capture.

The machine never looks a flow up or creates one: the caller owns the flow
table and passes the flow a packet belongs to.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pcapip.decode.columns import OPT_TOA_CANDIDATE, TH_ACK, TH_FIN, TH_RST, TH_SYN, Packets
from pcapip.flows import headers as hdr
from pcapip.flows.reassembly import StreamStart, seq_offset
from pcapip.flows.state import (
    HS_DONE,
    HS_FAILED,
    HS_NONE,
    HS_PENDING,
    TcpFlow,
    ToaSeen,
    UdpFlow,
)

_BARE = "datagram from the egress side without a PROXY header"


class PacketColumns:
    """Plain-list copies of the columns the machine reads, for a subset of a batch.

    Reading numpy scalars one by one costs more than the work done with them,
    so the rows a caller hands to the machine are converted in one go; ``j``
    indexes these lists, ``rows[j]`` is the packet's row in the batch.
    """

    __slots__ = (
        "rows",
        "frame",
        "ts",
        "olen",
        "flags",
        "seq",
        "ack",
        "optf",
        "optlen",
        "plen",
        "pcap",
        "buf",
        "pstart",
        "ostart",
        "ocap",
    )

    def __init__(self, p: Packets, rows: np.ndarray) -> None:
        self.rows = rows.tolist()
        self.buf = memoryview(p.data)
        fo = p.frame_off[rows]
        self.pstart = (fo + p.pay_off[rows]).tolist()
        oo = p.opt_off[rows]
        self.ostart = (fo + oo).tolist()
        self.ocap = np.maximum(0, np.minimum(p.opt_len[rows], p.caplen[rows] - oo)).tolist()
        self.frame = p.frame[rows].tolist()
        self.ts = p.ts_ns[rows].tolist()
        self.olen = p.origlen[rows].tolist()
        self.flags = p.tcp_flags[rows].tolist()
        self.seq = p.seq[rows].tolist()
        self.ack = p.ack[rows].tolist()
        self.optf = p.opt_flags[rows].tolist()
        self.optlen = p.opt_len[rows].tolist()
        self.plen = p.pay_len[rows].tolist()
        self.pcap = p.pay_cap[rows].tolist()

    def payload(self, j: int, n: int) -> bytes:
        s = self.pstart[j]
        return bytes(self.buf[s : s + n])

    def options(self, j: int) -> bytes:
        s = self.ostart[j]
        return bytes(self.buf[s : s + self.ocap[j]])


class Machine:
    """The rules, with the settings they need."""

    def __init__(self, registry: Any, stream_limit: int) -> None:
        self.registry = registry
        self.stream_limit = stream_limit
        self.capture = 0

    # ------------------------------------------------------------------ TCP
    def tcp(self, fl: TcpFlow, p: Packets, c: PacketColumns, j: int, side: int) -> None:
        """Apply packet ``j`` of ``c`` (sent by ``side``) to its flow ``fl``."""
        capture = self.capture
        frame, ts, f, seq = c.frame[j], c.ts[j], c.flags[j], c.seq[j]
        fl.packets += 1
        fl.bytes += c.olen[j]
        if ts < fl.start_ns:
            fl.start_ns = ts
        if ts > fl.end_ns:
            fl.end_ns = ts
        syn = f & TH_SYN
        pure_syn = syn and not (f & TH_ACK)

        is_hs = False
        if pure_syn:
            if fl.syn_seq is None:
                fl.syn_seq = seq
                fl.isn[side] = seq
                fl.egress = side
                if fl.hs == HS_NONE:
                    fl.hs = HS_PENDING
        elif syn:  # SYN-ACK
            if not fl.synack_seen:
                fl.synack_seen = True
                fl.isn[side] = seq
                if fl.syn_seq is None:
                    fl.egress = 1 - side
                    fl.isn[1 - side] = (c.ack[j] - 1) & 0xFFFFFFFF
                    if fl.hs == HS_NONE:
                        fl.hs = HS_PENDING
        elif fl.hs == HS_PENDING and side == fl.egress:
            is_hs = True
            optlen = c.optlen[j]
            fl.hs = HS_DONE if (f & TH_ACK) and not (f & TH_RST) else HS_FAILED
            fl.hs_frame, fl.hs_capture, fl.hs_opt_len = frame, capture, optlen
            if optlen and c.ocap[j] < optlen:
                fl.truncated = True
                fl.note(
                    "capture.truncated",
                    "TCP options of the handshake ACK cut by the snap length",
                    frame,
                    capture,
                )

        if c.optf[j] & OPT_TOA_CANDIDATE:
            self._toa(fl, p, c, j, side, "syn" if pure_syn else ("ack" if is_hs else "data"))

        plen = c.plen[j]
        if plen > 0:
            pcap = c.pcap[j]
            if not fl.pay_seen[side]:
                fl.pay_seen[side] = True
                fl.first_pay[side] = (frame, capture, c.payload(j, min(pcap, 16)))
            if not fl.settled and (fl.egress is None or fl.egress == side):
                self._stream(fl, c, j, side)

        if f & TH_FIN and not f & TH_RST and plen <= 0:
            self._lost_start(fl, side, seq)
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
            fl.closed = True

    def _lost_start(self, fl: TcpFlow, side: int, seq: int) -> None:
        """A FIN from the egress past its SYN with no payload seen from it: the bytes it
        sent (a PROXY header, perhaps) are missing from the capture, not absent."""
        isn = fl.isn[side]
        if fl.settled or side != fl.egress or isn is None or fl.pay_seen[side]:
            return
        if (seq - isn - 1) & 0xFFFFFFFF:
            fl.gap = True
            self._settle(fl)

    def _toa(self, fl: TcpFlow, p: Packets, c: PacketColumns, j, side, phase) -> None:
        """The TOA-kind options of packet ``j`` (its ``phase``: "syn", "ack" or "data")."""
        from pcapip.dissect import dissect_tcp_options

        frame, capture = c.frame[j], self.capture
        raw = c.options(j)
        optlen = c.optlen[j]
        i = c.rows[j]
        res = dissect_tcp_options(
            raw,
            base_offset=int(p.opt_off[i]),
            registry=self.registry,
            ip_version=int(p.ipver[i]) or None,
            wire_length=int(optlen),  # (an option the snap length cut is not malformed)
            build_tree=False,
        )
        if fl.egress is not None and side != fl.egress:
            if not res.options:
                return  # e.g. the standard User Timeout option (kind 28, length 4)
            fl.note(
                "toa.from_origin",
                f"a TOA-kind option (kind {res.options[0].kind}) sent by the origin side",
                frame,
                capture,
            )
            return
        if len(raw) < optlen:
            fl.truncated = True
            fl.note("capture.truncated", "TCP options cut by the snap length", frame, capture)
            fl.toa_cut = fl.toa_cut or any(o.client_ip is None for o in res.options)
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
            fl.egress = side
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
    def _stream(self, fl: TcpFlow, c: PacketColumns, j: int, side: int) -> None:
        """Add packet ``j``'s payload to the stream start of ``side`` (sent by the egress, or
        before the egress is known), then try to settle the header question."""
        frame, plen, pcap, capture = c.frame[j], c.plen[j], c.pcap[j], self.capture
        seq, synlen = c.seq[j], 1 if c.flags[j] & TH_SYN else 0
        isn = fl.isn[side]
        direct = fl.streams is None and fl.egress == side and isn is not None
        if direct:
            off = seq_offset(seq + synlen, (isn + 1) & 0xFFFFFFFF)
            # the usual case: the whole header (and what follows) in the first segment
            if off == 0 and pcap == plen and self._direct(fl, c.payload(j, pcap), frame, capture):
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
        stream.add(off, c.payload(j, pcap), frame, missing=plen - pcap, capture=capture)
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
                # a stream that ends on a few bytes that merely start like a signature
                # ("\r\n", "P") carried data, not a second header
                if len(rest) >= (len(b"PROXY ") if rest[:1] == b"P" else 12):
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
                return
            fl.no_header = True
            self._settle(fl)
            return
        if state == "need-more":
            if final or stuck:
                if fl.egress is None:
                    fl.egress = side
                fl.header = hdr.seen(r, stream, 0)
                fl.incomplete = True
                if stuck:
                    fl.truncated = True
                self._settle(fl)
            return
        if fl.egress is None:
            fl.egress = side
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

    def finish_tcp(self, fl: TcpFlow) -> None:
        """The flow ends: answer the header question from whatever was buffered."""
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

    # ------------------------------------------------------------------ UDP
    def udp(self, fl: UdpFlow, c: PacketColumns, j: int, side: int) -> None:
        """Apply datagram ``j`` of ``c`` (sent by ``side``) to its flow ``fl``."""
        capture = self.capture
        frame, ts, plen = c.frame[j], c.ts[j], c.plen[j]
        fl.packets += 1
        fl.bytes += c.olen[j]
        if ts < fl.start_ns:
            fl.start_ns = ts
        if ts > fl.end_ns:
            fl.end_ns = ts
        if plen <= 0:
            return
        # a UDP flow's question is answered by its first datagram with payload
        fl.settled = True
        if fl.confirmed and side != fl.egress:
            return
        pcap = c.pcap[j]
        data = c.payload(j, pcap)
        r = hdr.parse(data, final=True)
        state = r.state.value
        if state == "not-proxy":
            if side == fl.egress and fl.headers_ok + fl.headers_bad:
                fl.note("udp.header_missing", _BARE, frame, capture)
            elif not fl.confirmed and fl.bare[side] is None:
                fl.bare[side] = (frame, capture)  # (said once a header shows the egress side)
            return
        if not fl.confirmed:
            if side != fl.egress and fl.headers_ok + fl.headers_bad == 0:
                fl.egress = side
            fl.confirmed = True
            if side != fl.egress:
                return
            if fl.bare[side] is not None:
                fl.note("udp.header_missing", _BARE, *fl.bare[side])
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
                # a datagram the snap length cut may go on past the capture; a whole one cannot
                code, msg = hdr.malformed_finding(seen, datagram=plen <= pcap)
                fl.note(code, msg, frame, capture)
            return
        fl.headers_ok += 1
        h = r.header
        if fl.header is None:
            fl.header = seen
            return
        first = fl.header.header
        if (h.src_addr, h.src_port) != (first.src_addr, first.src_port):
            fl.note(
                "udp.client_changed",
                f"datagram announces client {hdr.hostport(h.src_addr, h.src_port)}, the flow's "
                f"first header announced {hdr.hostport(first.src_addr, first.src_port)}",
                frame,
                capture,
            )
