"""Turning a finished flow into its compact output row.

This is where the per-flow verdict is made: which mechanism carried the
client (``method``), whether it worked (``status``) and what is wrong
(findings that need only this flow). Findings that compare flows with each
other (``client.missing``, ``client.untrusted``...) are added by
``pcapip.flows.table`` once every flow is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pcapip.decode.addresses import ip_to_str
from pcapip.flows import headers as hdr
from pcapip.flows.attempts import attempt_status
from pcapip.flows.columns import METHODS, STATUSES
from pcapip.flows.findings import Finding
from pcapip.flows.state import HS_DONE, FlowBase, HeaderSeen, TcpFlow, UdpFlow
from pcapip.flows.verdict import NO_HEADER, header_status, verdict

_HTTP_400 = re.compile(rb"HTTP/[0-9]\.[0-9] 400[ \r\n]")
Note = tuple[str, str, "int | None", int]  # (code, message, frame, capture)
# the note of a flow seen from its middle, as both row builders (this, columnar) give it
MID_STREAM = ("flow.mid_stream", "no SYN or SYN-ACK captured for this connection")


_IP_CACHE: dict[tuple[int, int], str] = {}


def ip_text(hi: int, lo: int) -> str:
    """128-bit address halves (IPv4 stored IPv4-mapped) as text (``decode.ip_to_str``,
    cached: a capture's flows share few addresses)."""
    k = (hi, lo)
    t = _IP_CACHE.get(k)
    if t is None:
        t = ip_to_str(hi, lo)
        if len(_IP_CACHE) > 200_000:
            _IP_CACHE.clear()
        _IP_CACHE[k] = t
    return t


@dataclass(slots=True)
class FlowRow:
    """One output row plus the facts the cross-flow findings need."""

    capture: int
    first_frame: int
    transport: str
    start_ns: int
    end_ns: int
    egress_ip: str
    egress_port: int
    origin_ip: str
    origin_port: int
    method: str
    client_ip: str | None
    client_port: int | None
    proxy_ip: str | None
    proxy_port: int | None
    pp_command: str | None
    pp_family: str | None
    tlvs: str
    packets: int
    bytes: int
    status: str
    findings: list[Finding] = field(default_factory=list)
    header_frames: list[tuple[int, int]] = field(default_factory=list)  # (capture, frame)
    spoke: bool = False  # the egress side sent payload (UDP: always; a header may come in it)
    carries_client: bool = False  # a TOA or a PROXY header was sent (even LOCAL/malformed)
    toa_carried: bool = False
    no_room: tuple[int, int] | None = None  # (capture, frame) of a full handshake ACK without TOA
    hs_done: bool = False
    hs_toa: bool = False
    toa_in_syn: bool = False
    header_frame: tuple[int, int] | None = None  # where the client address was read
    toa_kind: int | None = None  # kind * 256 + length of the TOA option the client came from
    tunnel: str = ""  # the tunnel the connection was found in (pcapip.decode.tunnels)


def _endpoints(fl: FlowBase) -> tuple[int, str, int, str, int]:
    """(egress side, egress ip, egress port, origin ip, origin port)."""
    _, a_hi, a_lo, a_port, b_hi, b_lo, b_port, _ = fl.key
    eg = fl.egress
    if eg is None:
        # no handshake and no header: the lower port is most likely the service
        if a_port != b_port:
            eg = 0 if a_port > b_port else 1
        else:
            eg = 1 - fl.first_side if isinstance(fl, TcpFlow) else fl.first_side
    a = (ip_text(a_hi, a_lo), a_port)
    b = (ip_text(b_hi, b_lo), b_port)
    e, o = (a, b) if eg == 0 else (b, a)
    return eg, e[0], e[1], o[0], o[1]


class Notes:
    """The findings a row gets, each code once: the flow's own (if a flow is given) plus
    those judged while compacting it.

    Compacting never writes to the flow, so a flow can be previewed while it is
    still open and compacted again, on everything it saw, when it ends.
    """

    __slots__ = ("findings", "seen")

    def __init__(self, fl: FlowBase | None = None) -> None:
        self.findings: list[Finding] = list(fl.findings) if fl is not None else []
        self.seen: set[str] = set(fl.seen_codes) if fl is not None and fl.seen_codes else set()

    def note(self, code: str, message: str, frame: int | None, capture: int) -> None:
        if code in self.seen:
            return
        self.seen.add(code)
        self.findings.append(Finding(0, code, message, frame, capture))


def header_notes(notes: Notes, hs: HeaderSeen, capture: int, udp: bool = False) -> None:
    """What a PROXY header (in UDP if ``udp``) says about the row: a LOCAL one, one without
    a client address, one split over segments, what is odd in a valid one, or the rule it
    broke (both row builders ask this)."""
    cap, frame = hs.frames[0] if hs.frames else (capture, None)
    h = hs.header
    if hs.state == "ok" and h is not None:
        odd = hdr.oddities(hs, udp)
        if odd:
            notes.note("proxy.oddity", "; ".join(odd), frame, cap)
        if h.command == "LOCAL":
            notes.note(
                "proxy.local",
                f"PROXY v{h.version} LOCAL header: the proxy's own connection",
                frame,
                cap,
            )
        elif not hdr.carries_address(h):
            notes.note(
                "proxy.no_address",
                f"PROXY v{h.version} header with family {h.family}: no client address",
                frame,
                cap,
            )
        if hs.segments > 1:
            frames = ", ".join(str(f) for _, f in hs.frames[:8])
            notes.note(
                "proxy.split",
                f"{hs.length}-byte header arrived in {hs.segments} segments (packets {frames})",
                frame,
                cap,
            )
        return
    code, message = hdr.malformed_finding(hs)
    notes.note(code, message, frame, cap)


def _attempt(fl: TcpFlow, eg: int) -> int:
    """0, or 1 + the index in ATTEMPT_STATUSES of what became of a connection attempt
    (``pcapip.flows.attempts``; ``columnar`` asks the same of many flows)."""
    mine = [c for c in fl.closes[:2] if c[0] == 1 - eg]
    return int(
        attempt_status(
            fl.syn_seq is not None,
            fl.synack_seen,
            fl.hs,
            fl.pay_seen[0] or fl.pay_seen[1],
            len(mine) < len(fl.closes[:2]),
            bool(mine),
            any(c[1] == "rst" for c in mine),
        )
    )


def _verdict(fl: TcpFlow, eg: int) -> tuple[str, str]:
    """(method, status) of one flow, by the rules of ``pcapip.flows.verdict``."""
    hs = fl.header
    cut = fl.gap or (fl.truncated and not fl.no_header and bool(fl.pay_seen[eg]))
    m, st = verdict(
        NO_HEADER if hs is None else header_status(hs.state),
        0 if hs is None else hs.version or 1,
        fl.toa is not None,
        fl.toa_bad,
        cut,
        fl.start_seen,
        _attempt(fl, eg),
        fl.toa_cut,
    )
    return METHODS[int(m)], STATUSES[int(st)]


def _compact_tcp(fl: TcpFlow) -> FlowRow:
    notes = Notes(fl)
    eg, e_ip, e_port, o_ip, o_port = _endpoints(fl)
    hs, toa = fl.header, fl.toa
    method, status = _verdict(fl, eg)
    c_ip, c_port, p_ip, p_port, header_frame = _client(fl, notes, status)
    _stream_notes(fl, notes, status)
    _origin_reaction(fl, notes, eg, hs, method)
    no_room = None
    if fl.hs == HS_DONE and not fl.hs_toa and fl.hs_opt_len > 40 - 8 and fl.hs_frame is not None:
        no_room = (fl.hs_capture, fl.hs_frame)
    return _row(
        fl,
        (e_ip, e_port, o_ip, o_port),
        method,
        (c_ip, c_port, p_ip, p_port),
        hs.header if hs is not None else None,
        status,
        notes,
        _carrying_frames(fl),
        spoke=bool(fl.pay_seen[eg]),
        carries_client=hs is not None or toa is not None or fl.toa_bad or fl.toa_cut,
        toa_carried=toa is not None,
        no_room=no_room,
        hs_done=fl.hs == HS_DONE,
        hs_toa=fl.hs_toa,
        toa_in_syn=fl.toa_syn is not None,
        header_frame=header_frame,
        toa_kind=None if toa is None else toa.kind * 256 + toa.length,
    )


def _client(fl: TcpFlow, notes: Notes, status: str) -> tuple[Any, Any, Any, Any, Any]:
    """(client ip, port, proxy ip, port, the packet the client was read from) from the
    PROXY header, else from TOA; the header's notes, TOA against the header, a TOA that
    came too early or too late."""
    hs, toa = fl.header, fl.toa
    c_ip = c_port = p_ip = p_port = header_frame = None
    if hs is not None:
        c_ip, c_port, p_ip, p_port = hdr.client_fields(hs)
        header_frame = hs.frames[0] if hs.frames else None
        header_notes(notes, hs, fl.capture)
        if status == "incomplete" and fl.truncated:
            cap, frame = hs.frames[-1] if hs.frames else (fl.capture, None)
            notes.note(
                "capture.truncated",
                "the snap length cut the packet holding the PROXY header",
                frame,
                cap,
            )
    if toa is None:
        return c_ip, c_port, p_ip, p_port, header_frame
    if hs is None or (hs.state != "ok" and c_ip is None):
        c_ip, c_port = toa.client_ip, toa.client_port
        header_frame = (toa.capture, toa.frame)
    elif c_ip is not None and (toa.client_ip, toa.client_port) != (c_ip, c_port):
        disagree(notes, hs, (toa.client_ip, toa.client_port, toa.frame), (c_ip, c_port), fl.capture)
    if fl.toa_ack is None and fl.hs == HS_DONE:
        syn, data = fl.toa_syn, fl.toa_data
        notes.note(
            *late_toa(
                syn.frame if syn is not None else None,
                (data.frame, data.capture) if data is not None else None,
                fl.hs_frame,
                fl.hs_capture,
            )
        )
    return c_ip, c_port, p_ip, p_port, header_frame


def disagree(
    notes: Notes, hs: HeaderSeen, toa: tuple[str, Any, int], client: tuple[Any, Any], capture: int
) -> None:
    """A TOA option (its client address, port and packet) names another client than the
    PROXY header ``hs`` (``client``: its address and port)."""
    notes.note(
        "client.disagree",
        f"TOA (packet {toa[2]}) says {hdr.hostport(toa[0], toa[1])}, "
        f"the PROXY header says {hdr.hostport(*client)}",
        hs.frames[0][1] if hs.frames else None,
        capture,
    )


def late_toa(
    syn_frame: int | None, data: tuple[int, int] | None, hs_frame: Any, hs_capture: int
) -> Note:
    """The handshake completed without TOA in its ACK: TOA in the SYN (packet ``syn_frame``)
    but not there, else first in data (``data``: frame, capture) after it."""
    if syn_frame is not None:
        extra = " and in data segments" if data is not None else ""
        return (
            "toa.syn_only",
            f"TOA in the SYN (packet {syn_frame}){extra} but not in the handshake ACK "
            f"(packet {hs_frame})",
            hs_frame,
            hs_capture,
        )
    assert data is not None
    return (
        "toa.after_handshake",
        f"first TOA in packet {data[0]}, after the handshake ACK (packet {hs_frame})",
        *data,
    )


def _stream_notes(fl: TcpFlow, notes: Notes, status: str) -> None:
    """What the stream's start says beside the client: a second header, a gap or a snap
    length that hid the first bytes, a connection caught in the middle."""
    hs = fl.header
    if hs is not None and fl.stacked is not None:
        st = fl.stacked
        sh = st.header
        what = (
            f"PROXY v{st.version} {sh.command} {hdr.hostport(sh.src_addr, sh.src_port)}"
            if sh is not None
            else f"the start of a PROXY v{st.version} header"
        )
        cap, frame = st.frames[0] if st.frames else (fl.capture, None)
        notes.note("proxy.stacked", f"a second header follows the first: {what}", frame, cap)
    if hs is None and fl.toa is None and not fl.toa_bad and not fl.toa_cut:
        if fl.gap:
            notes.note(
                "capture.gap",
                "the first bytes of the stream are missing from the capture",
                None,
                fl.capture,
            )
        elif status == "incomplete":
            notes.note(
                "capture.truncated", "the snap length cut the first payload bytes", None, fl.capture
            )
    if not fl.start_seen:
        notes.note(*MID_STREAM, fl.first_frame, fl.capture)


def _carrying_frames(fl: TcpFlow) -> list[tuple[int, int]]:
    """The packets that carried the client address: TOA in the SYN, the handshake ACK, the
    data, then the header's and a stacked header's, each once."""
    frames: list[tuple[int, int]] = []
    for t in (fl.toa_syn, fl.toa_ack, fl.toa_data):
        if t is not None and (t.capture, t.frame) not in frames:
            frames.append((t.capture, t.frame))
    for x in (fl.header, fl.stacked):
        if x is not None:
            frames.extend(f for f in x.frames if f not in frames)
    return frames


def _origin_reaction(
    fl: TcpFlow, notes: Notes, eg: int, hs: HeaderSeen | None, method: str
) -> None:
    """Did the origin refuse what the egress sent first?"""
    if fl.egress is None or not fl.pay_seen[eg]:
        return
    og = 1 - eg
    reply = fl.first_pay[og]
    close = fl.closes[0] if fl.closes else None
    silent_close = close is not None and close[0] == og and not close[4 + og] and close[4 + eg]
    if hs is not None and hs.state == "ok":
        origin_rejected(
            notes,
            reply[:2] if reply is not None and _HTTP_400.match(reply[2]) else None,
            (close[1].upper(), close[2], close[3]) if silent_close else None,
        )
    elif method == "none" and silent_close:
        notes.note(*closed_silently(close[1].upper()), close[2], close[3])


def closed_silently(what: str) -> tuple[str, str]:
    """The origin closed (``what``: FIN or RST) after the first data without a reply, when
    no client address was carried: (code, message)."""
    return (
        "origin.closed_silently",
        f"the origin sent {what} after the first data, without replying",
    )


def origin_rejected(
    notes: Notes, reply_400: tuple[int, int] | None, close: tuple[str, int, int] | None
) -> None:
    """The origin refused a clean PROXY header: an HTTP 400 reply (its frame, capture),
    else a close (FIN or RST, its frame, capture) without a reply."""
    if reply_400 is not None:
        notes.note(
            "origin.rejected",
            "the origin answered HTTP 400 to the PROXY header: it parsed it as a request",
            *reply_400,
        )
    elif close is not None:
        what, frame, capture = close
        notes.note(
            "origin.rejected",
            f"the origin sent {what} right after the PROXY header, with no reply",
            frame,
            capture,
        )


def _compact_udp(fl: UdpFlow) -> FlowRow:
    notes = Notes(fl)
    eg, e_ip, e_port, o_ip, o_port = _endpoints(fl)
    hs = fl.header or fl.first_bad
    h = hs.header if hs is not None else None
    c_ip = c_port = p_ip = p_port = None
    if fl.header is not None:
        method, status = f"ppv{fl.header.version}", "ok"
        c_ip, c_port, p_ip, p_port = hdr.client_fields(fl.header)
        header_notes(notes, fl.header, fl.capture, udp=True)
    elif fl.first_bad is not None:
        method, status = f"ppv{fl.first_bad.version}", "malformed"
    else:
        method, status = "none", "absent"
    frames = list(hs.frames) if hs is not None else []
    return _row(
        fl,
        (e_ip, e_port, o_ip, o_port),
        method,
        (c_ip, c_port, p_ip, p_port),
        h,
        status,
        notes,
        frames,
        spoke=True,
        carries_client=hs is not None,
        header_frame=frames[0] if frames else None,
    )


def _row(
    fl: FlowBase,
    ends: tuple[str, int, str, int],
    method: str,
    addrs: tuple[str | None, int | None, str | None, int | None],
    h: Any,
    status: str,
    notes: Notes,
    frames: list[tuple[int, int]],
    **facts: Any,
) -> FlowRow:
    """A flow's row: what it decided (method, addresses, header, status, findings) plus
    what every row copies from its flow the same way, TCP or UDP."""
    e_ip, e_port, o_ip, o_port = ends
    c_ip, c_port, p_ip, p_port = addrs
    return FlowRow(
        fl.capture,
        fl.first_frame,
        "tcp" if isinstance(fl, TcpFlow) else "udp",
        fl.start_ns,
        fl.end_ns,
        e_ip,
        e_port,
        o_ip,
        o_port,
        method,
        c_ip,
        c_port,
        p_ip,
        p_port,
        h.command if h is not None else None,
        h.family if h is not None else None,
        hdr.tlv_text(h),
        fl.packets,
        fl.bytes,
        status,
        notes.findings,
        frames,
        tunnel=fl.tunnel,
        **facts,
    )


def compact(fl: FlowBase) -> FlowRow:
    """The row of a flow: its verdict, counters and findings. The flow is not changed, so
    an open flow's row is its preview (a header still being reassembled is judged only
    when the flow ends; findings that compare flows are added by the table)."""
    return _compact_tcp(fl) if isinstance(fl, TcpFlow) else _compact_udp(fl)
