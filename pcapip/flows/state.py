"""Per-flow state while a capture is being read.

Kept deliberately small: counters, the handshake facts the findings need, the
first TOA seen in each phase of the connection, and a stream-start buffer that
exists only while the header question is open. Everything else about a packet
is forgotten as soon as it has been looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pcapip.flows.reassembly import StreamStart

# handshake-completion states
HS_NONE = 0  # no SYN/SYN-ACK seen (yet)
HS_PENDING = 1  # SYN (or SYN-ACK) seen, waiting for the egress side's next segment
HS_DONE = 2  # the egress side's first segment after the SYN was an ACK: handshake completed
HS_FAILED = 3  # ... it was something else (RST, no ACK flag)


@dataclass(slots=True)
class ToaSeen:
    """The client address a TOA option carried in one packet."""

    client_ip: str
    client_port: int | None
    kind: int
    length: int
    variant: str | None
    frame: int
    capture: int


@dataclass(slots=True)
class HeaderSeen:
    """A PROXY header found at the start of a stream (or in a datagram)."""

    state: str  # ParseState value: "ok" | "malformed" | "need-more"
    version: int  # 1 | 2 (0 when the prefix is too short to tell)
    header: Any  # ProxyHeader | None
    reason: str | None  # rule broken (MALFORMED)
    codes: tuple[str, ...]  # expert codes of the parse
    length: int  # header bytes
    frames: list[tuple[int, int]]  # (capture, frame) of the segments holding it
    segments: int = 1


class FlowBase:
    """State shared by TCP and UDP flows. Plain slots and literal defaults: a capture
    with a hundred thousand short connections creates a hundred thousand of these."""

    __slots__ = (
        "key",
        "capture",
        "first_frame",
        "start_ns",
        "end_ns",
        "first_side",
        "packets",
        "bytes",
        "egress",
        "findings",
        "seen_codes",
        "serial",
        "settled",
        "tunnel",
    )

    def __init__(
        self,
        key: tuple,
        capture: int,
        first_frame: int,
        start_ns: int,
        end_ns: int,
        first_side: int,
        egress: int | None = None,
    ) -> None:
        self.key = key  # proto, a_hi, a_lo, a_port, b_hi, b_lo, b_port, the tenant's tunnel
        self.capture = capture  # capture index of the first packet
        self.first_frame = first_frame
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.first_side = first_side  # side (0 = A, 1 = B) that sent the first packet
        self.packets = 0
        self.bytes = 0
        self.egress = egress  # side of the egress (proxy) end
        self.findings: list[Any] = []  # Finding (flow id filled at the end)
        self.seen_codes: set[str] | None = None
        self.serial = 0  # unique per tracker: identifies the flow across callbacks
        # the client question is answered (TCP: header decoded or ruled out; UDP: first
        # datagram with payload seen); what the tracker's on_settled reports
        self.settled = False
        self.tunnel = ""  # the tunnel column: the tunnel of the first packet (flows/tunnels.py)
        self._start()

    def _start(self) -> None:
        """Set the state a transport adds to every flow (subclasses)."""

    def note(self, code: str, message: str, frame: int | None, capture: int) -> None:
        """Record a finding once per flow (the first occurrence names the packet)."""
        if self.seen_codes is None:
            self.seen_codes = set()
        elif code in self.seen_codes:
            return
        self.seen_codes.add(code)
        from pcapip.flows.findings import Finding

        self.findings.append(Finding(0, code, message, frame, capture))


class TcpFlow(FlowBase):
    __slots__ = (
        "syn_seq",
        "synack_seen",
        "isn",
        "base",
        "hs",
        "hs_frame",
        "hs_capture",
        "hs_opt_len",
        "hs_toa",
        "closed",
        "fin_mask",
        "closes",
        "pay_seen",
        "first_pay",
        "streams",
        "noheader",
        "header",
        "stacked",
        "no_header",
        "incomplete",
        "truncated",
        "gap",
        "toa_syn",
        "toa_ack",
        "toa_data",
        "toa_bad",
        "toa_cut",
    )

    def _start(self) -> None:
        self.syn_seq: int | None = None  # sequence number of the (first) pure SYN
        self.synack_seen = False
        self.isn: list[int | None] = [None, None]  # ISN per side
        self.base: list[int | None] = [None, None]  # mid-stream: sequence number of offset 0
        self.hs = HS_NONE
        self.hs_frame: int | None = None
        self.hs_capture = 0
        self.hs_opt_len = 0
        self.hs_toa = False
        self.closed = False
        self.fin_mask = 0  # bit 0/1: FIN from side 0/1, bit 2: RST
        # first two FIN/RST: (side, "fin"|"rst", frame, capture, side0 had payload, side1 had payload)
        self.closes: list[tuple[int, str, int, int, bool, bool]] = []
        self.pay_seen = [False, False]
        self.first_pay: list[tuple[int, int, bytes] | None] = [None, None]
        self.streams: list[StreamStart | None] | None = None
        self.noheader = [False, False]
        self.header: HeaderSeen | None = None
        self.stacked: HeaderSeen | None = None
        self.no_header = False  # the stream start was seen and it is not a PROXY header
        self.incomplete = False
        self.truncated = False
        self.gap = False
        self.toa_syn: ToaSeen | None = None
        self.toa_ack: ToaSeen | None = None
        self.toa_data: ToaSeen | None = None
        self.toa_bad = False  # a malformed/unrecognised TOA-kind option from the egress side
        self.toa_cut = False  # a TOA-kind option from the egress side cut by the snap length

    @property
    def start_seen(self) -> bool:
        return self.syn_seq is not None or self.synack_seen

    @property
    def toa(self) -> ToaSeen | None:
        """The TOA a receiving module most likely uses: handshake ACK, else SYN, else data."""
        return self.toa_ack or self.toa_syn or self.toa_data


class UdpFlow(FlowBase):
    __slots__ = (
        "confirmed",
        "header",
        "first_bad",
        "headers_ok",
        "headers_bad",
        "bare",
    )

    def _start(self) -> None:
        self.confirmed = False  # egress side decided by a header rather than by who spoke first
        self.header: HeaderSeen | None = None  # first valid header
        self.first_bad: HeaderSeen | None = None  # first malformed/truncated header
        self.headers_ok = 0
        self.headers_bad = 0
        # per side, the first datagram without a header before any header (frame, capture)
        self.bare: list[tuple[int, int] | None] = [None, None]
