"""The findings catalogue: every problem pcapip reports about a flow, in one place.

A finding code is a stable identifier that scripts, ``--fail-on`` and tests key
on; the title, meaning and fix are for the operator reading the report and may
be reworded. The README and the TUI render this catalogue, so every code the
flow stage can emit must be listed here (a test checks it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class Level(IntEnum):
    """Finding severities, ordered so ``--fail-on`` can compare them."""

    INFO = 0
    WARNING = 1
    ERROR = 2

    @property
    def label(self) -> str:
        return ("info", "warning", "error")[self.value]

    @classmethod
    def parse(cls, text: str) -> Level:
        try:
            return {"info": cls.INFO, "warning": cls.WARNING, "error": cls.ERROR}[text.lower()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r} (use info, warning or error)") from None


@dataclass(frozen=True, slots=True)
class FindingKind:
    """One catalogue entry: what the code means and what to try."""

    code: str
    level: Level
    title: str  # one line, shown in tables
    meaning: str  # what happened, in plain words
    fix: str  # what to change or check


@dataclass(slots=True)
class Finding:
    """One finding on one flow, at one packet when a packet is to blame."""

    flow: int
    code: str
    message: str
    frame: int | None = None  # 1-based packet number in its capture
    capture: int = 0  # index of the capture in the list given to analyze

    @property
    def level(self) -> Level:
        return CATALOGUE[self.code].level


_I, _W, _E = Level.INFO, Level.WARNING, Level.ERROR

_ENTRIES: tuple[FindingKind, ...] = (
    # --- who is the client
    FindingKind(
        "client.missing",
        _W,
        "No client address on a flow to a port where other flows carry one",
        "Other connections to this origin port arrived with a TOA option or a PROXY header, "
        "this one carried neither, so the origin sees the proxy's egress address as the client. "
        "(A connection that sent no data is judged only on a TOA port, where the handshake ACK "
        "carries the option: on a PROXY port its header would have come with the first data.)",
        "Check that every proxy listener/backend forwarding to this port has TOA or PROXY protocol "
        "enabled (HAProxy: send-proxy / send-proxy-v2 on every server line), and that health "
        "checks or a second proxy path are not bypassing it.",
    ),
    FindingKind(
        "client.untrusted",
        _E,
        "Client address from a source outside --trusted",
        "A TOA option or PROXY header arrived from an address that is not one of the trusted "
        "proxies. Anyone who can reach the origin can claim any client address this way.",
        "Only accept TOA/PROXY from the proxy's egress addresses: firewall the origin port to "
        "them (nginx: set_real_ip_from; HAProxy: tcp-request connection expect-proxy layer4 if "
        "{ src <proxies> }), or add the missing proxy range to --trusted if it is legitimate.",
    ),
    FindingKind(
        "client.disagree",
        _E,
        "TOA and PROXY header name different clients",
        "The same connection carried a TOA option and a PROXY header, and they give different "
        "client addresses. Two proxies are stacked, or one of them rewrites the address.",
        "Enable only one mechanism on the path to the origin, or make sure the origin reads the "
        "one set by the proxy closest to the client.",
    ),
    # --- the proxy's forwarding rules (--rules)
    FindingKind(
        "rule.mismatch",
        _E,
        "The wire does not pass the client the way the forwarding rule says",
        "The rule covering this flow's origin port says how the proxy passes the client address "
        "(toa, ppv1, ppv2 or off), and the flow carried something else: another PROXY version, "
        "no header or TOA where the rule promises one, a header the rule says is off (the origin "
        "reads it as data), or a PROXY header whose destination port is not the rule's "
        "forwarding port for this origin port.",
        "Make the rule, the proxy and the origin agree: re-export the rules if they are out of "
        "date, set the rule's pass-client-IP method to what the origin expects, and look for a "
        "second proxy or a path that bypasses the configured one.",
    ),
    FindingKind(
        "rule.unmatched",
        _W,
        "No forwarding rule covers this flow",
        "No rule of --rules forwards this protocol to this origin port (and, for rules naming an "
        "IP address, this origin address): traffic that bypasses the configured proxy, or a "
        "rule missing from the file.",
        "Add the missing rule, or close the port to everything but the proxy's egress addresses.",
    ),
    # --- TOA
    FindingKind(
        "toa.malformed",
        _E,
        "Malformed TOA option",
        "An option with a TOA kind has a length or layout no TOA variant uses, so receiving "
        "modules ignore it (or, with a broken option walk, ignore every option after it).",
        "Check the proxy's TOA settings (kind and IPv4/IPv6 variant) against the receiving "
        "module; if the kind is a different, non-TOA option, restrict decoding with --toa-kind.",
    ),
    FindingKind(
        "toa.unreachable",
        _W,
        "TOA present but a kernel option walk never reaches it",
        "The option sits after an End-of-Options byte or after a broken option, where receiving "
        "modules stop reading, so the origin will not see the client address.",
        "Fix the sender's option layout (the TOA must come before EOL and after well-formed "
        "options only).",
    ),
    FindingKind(
        "toa.syn_only",
        _W,
        "TOA only in the SYN",
        "The client address was in the SYN but not in the ACK that completes the handshake. "
        "Most receiving modules read only the handshake-completing ACK, so the origin will not "
        "see it.",
        "Use a proxy setting/version that also puts TOA in the handshake ACK, or a receiving "
        "module that reads the SYN.",
    ),
    FindingKind(
        "toa.after_handshake",
        _W,
        "TOA only after the handshake",
        "The client address appeared only in data segments, not in the SYN or the handshake "
        "ACK; modules that hook the handshake (syn_recv_sock) never see it.",
        "Configure the proxy to send TOA in the handshake ACK, or use a module that reads it "
        "from data segments.",
    ),
    FindingKind(
        "toa.no_room",
        _W,
        "No room for TOA in the handshake ACK",
        "The handshake ACK carried no TOA and its options (timestamps, SACK blocks) leave fewer "
        "than 8 of the 40 option bytes free; senders silently drop the TOA when it does not fit.",
        "Disable TCP timestamps or SACK on the proxy-to-origin leg, or use PROXY protocol.",
    ),
    FindingKind(
        "toa.inconsistent",
        _W,
        "TOA options of one flow name different clients",
        "Packets of the same connection carried TOA options with different client addresses; "
        "which one the origin uses depends on the receiving module.",
        "Check the proxy for address rewriting between the SYN and later segments.",
    ),
    FindingKind(
        "toa.from_origin",
        _I,
        "TOA-kind option sent by the origin",
        "The origin side sent an option whose kind is a TOA kind. TOA only travels towards the "
        "origin, so this is another option sharing the number (kinds 253/254 are also RFC 6994 "
        "experimental options).",
        "Nothing to fix for client addresses; restrict --toa-kind if this kind is not a TOA in "
        "your network.",
    ),
    # --- PROXY protocol
    FindingKind(
        "proxy.v1.malformed",
        _E,
        "Malformed PROXY v1 header",
        "The stream starts with 'PROXY' but the line breaks a rule of the specification; a "
        "conforming origin drops the connection.",
        "Fix the sender (or whatever rewrites the first bytes); the message names the rule.",
    ),
    FindingKind(
        "proxy.v2.malformed",
        _E,
        "Malformed PROXY v2 header",
        "The stream starts with the v2 signature but the header breaks a rule of the "
        "specification; a conforming origin drops the connection.",
        "Fix the sender; the message names the rule.",
    ),
    FindingKind(
        "proxy.v2.crc32c_bad",
        _E,
        "PROXY v2 CRC32C mismatch",
        "The header's CRC32C TLV does not match its bytes; the specification tells the receiver "
        "to drop the connection.",
        "Look for a device rewriting the header on the way (or a sender computing the checksum "
        "over the wrong bytes).",
    ),
    FindingKind(
        "proxy.split",
        _I,
        "PROXY header split across segments",
        "The header arrived in more than one TCP segment. Tolerant receivers reassemble it; "
        "some drop the connection on a partial header.",
        "Usually harmless; if the origin rejects these flows, make the sender write the header "
        "in one send() or use a receiver that waits for the whole header.",
    ),
    FindingKind(
        "proxy.incomplete",
        _E,
        "PROXY header incomplete at end of capture",
        "The stream starts with a header that never completed in the capture: the sender "
        "stopped, packets were lost, or the capture ended.",
        "Capture longer or check for loss; if the connection really stalls, the origin times "
        "out waiting for the rest of the header.",
    ),
    FindingKind(
        "proxy.local",
        _I,
        "PROXY LOCAL header (health check)",
        "The proxy opened this connection itself (health checks) and says so with LOCAL: no "
        "client address is carried, by design.",
        "Nothing to fix.",
    ),
    FindingKind(
        "proxy.self_addressed",
        _I,
        "PROXY header names the connection itself (health check)",
        "The header's source is the connection's own source address and port: the proxy opened "
        "this connection itself, typically a health check sent with PROXY v1 (HAProxy's "
        "check-send-proxy), so the 'client' is the proxy's egress, not a real client.",
        "Nothing to fix; leave these flows out when counting clients (or have the proxy send "
        "PROXY v2 LOCAL for its checks).",
    ),
    FindingKind(
        "proxy.no_address",
        _I,
        "PROXY header without addresses",
        "The header is valid but carries no usable address (v1 UNKNOWN, v2 UNSPEC or UNIX), so "
        "the origin keeps the connection's own addresses.",
        "Expected for health checks and unsupported families; otherwise check the proxy's "
        "listener family.",
    ),
    FindingKind(
        "proxy.oddity",
        _W,
        "PROXY header valid but odd",
        "Receivers accept the header, but a part of it is not what the specification asks for "
        "or not what the connection is: a TLV meant as text that is not UTF-8, a TLV type from "
        "the reserved range, an SSL TLV without its version, an IPv6 address in dotted form, "
        "a STREAM header in UDP or a DGRAM one in TCP, v1 in UDP. The message names each.",
        "Check the sender's configuration or version; the origin may read the part differently "
        "from what the sender meant.",
    ),
    FindingKind(
        "proxy.stacked",
        _E,
        "Stacked PROXY headers",
        "A second PROXY header follows the first. Two proxies on the path both add a header; "
        "the origin parses the first and passes the second to the application as data.",
        "Enable PROXY protocol on only one hop, or have the inner proxy accept (accept-proxy) "
        "instead of adding its own.",
    ),
    FindingKind(
        "origin.rejected",
        _E,
        "Origin rejected the PROXY header",
        "Right after the header the origin closed or reset the connection without sending "
        "anything, or answered HTTP 400: it is not configured for PROXY protocol.",
        "Enable PROXY protocol on the origin listener (nginx: listen ... proxy_protocol; "
        "HAProxy: accept-proxy) or stop sending it from the proxy.",
    ),
    FindingKind(
        "origin.closed_silently",
        _W,
        "Origin closed without replying to a connection that carried no header",
        "The connection carried no client address and the origin closed or reset it before "
        "sending anything: an origin that expects PROXY protocol does exactly this.",
        "If the origin listener has proxy_protocol/accept-proxy, enable send-proxy on the "
        "proxy for this backend (health checks too).",
    ),
    # --- UDP
    FindingKind(
        "udp.client_changed",
        _W,
        "UDP datagram announces a different client",
        "Datagrams of one UDP flow carried PROXY headers naming different clients; the flow's "
        "client is taken from its first valid header.",
        "Check whether the proxy multiplexes clients onto one egress port.",
    ),
    FindingKind(
        "udp.header_missing",
        _W,
        "UDP datagrams without a PROXY header in a flow that has one",
        "PROXY protocol over UDP puts a header in every datagram; some datagrams of this flow "
        "had none, and a receiver expecting it drops or misreads them.",
        "Check the proxy's UDP PROXY protocol setting.",
    ),
    # --- the capture itself
    FindingKind(
        "capture.truncated",
        _W,
        "Snap length cut into a header",
        "The capture kept fewer bytes of a packet than were on the wire, and the cut falls in "
        "the TCP options or the PROXY header.",
        "Capture with a larger snap length (tcpdump -s 0).",
    ),
    FindingKind(
        "capture.gap",
        _W,
        "Bytes missing at the start of the stream",
        "The first bytes of the proxy-to-origin stream are not in the capture (loss at the "
        "capture point), so the header question cannot be answered.",
        "Capture on the origin host itself, or with larger buffers (tcpdump -B).",
    ),
    FindingKind(
        "stream.overlap_conflict",
        _W,
        "Retransmitted bytes differ from the original",
        "Two segments cover the same stream-start bytes with different contents; the report "
        "uses the first copy. Something on the path rewrote or injected data.",
        "Look for middleboxes rewriting the first bytes of connections.",
    ),
    FindingKind(
        "capture.flow_limit",
        _W,
        "Flow tracked only in part: too many connections open at once",
        "The flow stage tracks at most a set number of connections at the same time (live "
        "capture: --max-flows), so memory stays bounded however long it runs. This connection "
        "was among the oldest when the limit was exceeded and its tracking ended early: packets "
        "after that count as a new flow (usually mid-stream), and its counters stop there.",
        "Raise --max-flows if memory allows, or narrow the capture with a filter (-f 'tcp port "
        "443'). The -w copy of a live capture holds every packet: pcapip analyze on it has no "
        "limit.",
    ),
    FindingKind(
        "flow.mid_stream",
        _I,
        "Connection start not captured",
        "The capture began after this connection was set up, so its handshake is missing and "
        "the client address may have gone by before the capture started.",
        "Start the capture before the connections of interest, or look at newer connections.",
    ),
)

CATALOGUE: dict[str, FindingKind] = {k.code: k for k in _ENTRIES}
ORDER: dict[str, int] = {k.code: i for i, k in enumerate(_ENTRIES)}


def kind(code: str) -> FindingKind:
    """The catalogue entry of a code (KeyError for an unknown code: a bug, not input)."""
    return CATALOGUE[code]


def join_codes(codes: Iterable[str]) -> str:
    """A flow's findings column: distinct codes in catalogue order, so output is stable
    (a code the catalogue does not know, last). Every writer of the column spells it so."""
    return ";".join(sorted(set(codes), key=lambda c: ORDER.get(c, len(ORDER))))


# Receiving-side module families per TOA kind, to answer "the server still sees the proxy's
# IP" (the report's "TOA kinds seen" line). Built from the senders each kind is used with
# (see the TOA variants table): a module is built for one kind, so it ignores the others.
TOA_RECEIVERS: dict[int, str] = {
    200: "Tencent Cloud toa.ko (TCPOPT_ADDR 200), ip_vs_ca (default kind), JD jupiter, UCloud",
    254: "Alibaba toa/vtoa, Huawei ELB toa, DPVS kmod/toa, ByteDance toa, UCloud",
    253: "Alibaba LVS IPv6 toa/vtoa, Huawei ELB toa (IPv6)",
    201: "JD jupiter toa (IPv6)",
    250: "Alibaba vtoa (VIP only; the client comes from the 254 option before it)",
    252: "Alibaba VPC SLB toa",
    249: "Alibaba vtoa (IPv6)",
    28: "Alibaba Cloud CDN toa",
}
