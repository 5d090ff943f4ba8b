"""Build the generated flow captures in tests/pcaps/ (flow-*.pcap).

Each capture holds a handful of connections, each built to exercise one rule
of the flow stage: TOA in different handshake phases, PROXY headers split,
reordered, retransmitted, stacked or cut, port reuse, mid-stream starts, UDP
PROXY v2 and spoofing. ``SCENARIOS`` records what every connection was built
to carry (the client it announces, the method, the findings it must raise),
so tests compare the analysis against the construction, not against earlier
output. Frames are written with the standard library only.

Run: ``python tests/gen/flow_pcaps.py [OUTDIR]`` (default: tests/pcaps).
Deterministic: fixed timestamps, addresses, ports and sequence numbers.
"""

from __future__ import annotations

import ipaddress
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"

ORIGIN = "198.51.100.20"
PROXY1 = "192.0.2.10"  # trusted egress
PROXY2 = "192.0.2.11"
ROGUE = "203.0.113.66"  # not a proxy


# ------------------------------------------------------------------ bytes on the wire
def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _ip4(src: str, dst: str, proto: int, l4: bytes, ident: int = 1) -> bytes:
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(l4),
        ident,
        0x4000,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return hdr + l4


def _l4_csum(src: str, dst: str, proto: int, seg: bytes) -> int:
    pseudo = (
        ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
        + struct.pack("!BBH", 0, proto, len(seg))
    )
    return _csum(pseudo + seg)


def tcp_segment(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    options: bytes = b"",
) -> bytes:
    """Ethernet + IPv4 + TCP frame with correct checksums (options padded with NOPs... no: EOL)."""
    if len(options) % 4:
        options += b"\0" * (4 - len(options) % 4)
    off = (20 + len(options)) // 4
    seg = (
        struct.pack(
            "!HHIIBBHHH",
            sport,
            dport,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            off << 4,
            flags,
            65535,
            0,
            0,
        )
        + options
        + payload
    )
    c = _l4_csum(src, dst, 6, seg)
    seg = seg[:16] + struct.pack("!H", c) + seg[18:]
    return _eth(_ip4(src, dst, 6, seg))


def udp_datagram(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = _l4_csum(src, dst, 17, seg) or 0xFFFF
    seg = seg[:6] + struct.pack("!H", c) + seg[8:]
    return _eth(_ip4(src, dst, 17, seg))


def _eth(ip: bytes) -> bytes:
    return bytes.fromhex("0200000000020200000000010800") + ip


def write_pcap(path: Path, frames: list[tuple[float, bytes, int]]) -> None:
    """frames: (timestamp, frame bytes, snap length or 0 for the whole frame)."""
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, data, snap in frames:
            cap = data[:snap] if snap else data
            sec = int(ts)
            fh.write(struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)), len(cap), len(data)))
            fh.write(cap)


# ------------------------------------------------------------------ headers
def v1(src: str, dst: str, sport: int, dport: int) -> bytes:
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(
    src: str | None,
    dst: str | None,
    sport: int = 0,
    dport: int = 0,
    *,
    local: bool = False,
    dgram: bool = False,
    tlvs: bytes = b"",
    crc: bool = False,
    bad_crc: bool = False,
) -> bytes:
    if local:
        return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    body = (
        ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
        + struct.pack("!HH", sport, dport)
    )
    fam = 0x12 if dgram else 0x11
    if crc:
        tlvs = tlvs + b"\x03\x00\x04" + b"\0\0\0\0"
    head = V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body) + len(tlvs)) + body + tlvs
    if crc:
        import google_crc32c

        value = google_crc32c.value(head)
        if bad_crc:
            value ^= 0xDEADBEEF
        head = head[:-4] + struct.pack("!I", value)
    return head


def tlv(t: int, value: bytes) -> bytes:
    return struct.pack("!BH", t, len(value)) + value


def toa200(ip: str, port: int) -> bytes:
    return struct.pack("!BBH4s", 200, 8, port, ipaddress.IPv4Address(ip).packed)


TS_OPT = struct.pack("!BBII", 8, 10, 1, 0)
NOP = b"\x01"


# ------------------------------------------------------------------ scenario bookkeeping
@dataclass
class Expect:
    """What one connection was built to show."""

    egress: tuple[str, int]
    origin: tuple[str, int]
    method: str
    status: str
    client: tuple[str, int] | None = None
    proxy: tuple[str, int] | None = None
    codes: set[str] = field(default_factory=set)  # findings it must raise
    absent: set[str] = field(default_factory=set)  # findings it must not raise
    transport: str = "tcp"
    pp_command: str | None = None
    tlvs: str | None = None


@dataclass
class Capture:
    name: str
    description: str
    frames: list[tuple[float, bytes, int]] = field(default_factory=list)
    expect: list[Expect] = field(default_factory=list)
    t: float = 1_700_000_000.0

    def add(self, frame: bytes, snap: int = 0, dt: float = 0.001) -> None:
        self.t += dt
        self.frames.append((self.t, frame, snap))


class Conn:
    """One TCP connection egress -> origin, with sequence numbers tracked per side."""

    def __init__(
        self,
        cap: Capture,
        egress: tuple[str, int],
        origin: tuple[str, int],
        isn_e: int = 1000,
        isn_o: int = 5000,
    ) -> None:
        self.cap, self.e, self.o = cap, egress, origin
        self.isn_e, self.isn_o = isn_e, isn_o
        self.se, self.so = isn_e + 1, isn_o + 1  # next sequence number of each side

    def _e(self, seq, ack, flags, payload=b"", options=b"", snap=0):
        self.cap.add(
            tcp_segment(
                self.e[0], self.o[0], self.e[1], self.o[1], seq, ack, flags, payload, options
            ),
            snap,
        )

    def _o(self, seq, ack, flags, payload=b"", options=b""):
        self.cap.add(
            tcp_segment(
                self.o[0], self.e[0], self.o[1], self.e[1], seq, ack, flags, payload, options
            )
        )

    def handshake(self, syn_opts=b"", synack_opts=b"", ack_opts=b"", ack=True) -> Conn:
        self._e(self.isn_e, 0, SYN, options=syn_opts)
        self._o(self.isn_o, self.isn_e + 1, SYN | ACK, options=synack_opts)
        if ack:
            self._e(self.se, self.so, ACK, options=ack_opts)
        return self

    def send(
        self, data: bytes, *, at: int | None = None, options=b"", snap=0, advance=True
    ) -> Conn:
        """Egress data at stream offset ``at`` (default: next byte)."""
        seq = self.isn_e + 1 + at if at is not None else self.se
        self._e(seq, self.so, ACK | PSH, data, options, snap)
        if advance:
            self.se = max(self.se, seq + len(data))
        return self

    def reply(self, data: bytes) -> Conn:
        self._o(self.so, self.se, ACK | PSH, data)
        self.so += len(data)
        return self

    def ack_o(self) -> Conn:
        self._o(self.so, self.se, ACK)
        return self

    def close(self, origin_first: bool = False, rst: bool = False) -> Conn:
        if rst:
            if origin_first:
                self._o(self.so, self.se, RST | ACK)
            else:
                self._e(self.se, self.so, RST | ACK)
            return self
        if origin_first:
            self._o(self.so, self.se, FIN | ACK)
            self.so += 1
            self._e(self.se, self.so, FIN | ACK)
            self.se += 1
            self._o(self.so, self.se, ACK)
        else:
            self._e(self.se, self.so, FIN | ACK)
            self.se += 1
            self._o(self.so, self.se, FIN | ACK)
            self.so += 1
            self._e(self.se, self.so, ACK)
        return self


def _x(cap, egress, origin, method, status, client=None, **kw) -> Expect:
    e = Expect(egress, origin, method, status, client, **kw)
    cap.expect.append(e)
    return e


HTTP_GET = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"
HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
HTTP_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


# ------------------------------------------------------------------ captures
def toa_capture() -> Capture:
    cap = Capture("flow-toa.pcap", "TOA (kind 200) in different handshake phases")
    o = (ORIGIN, 80)
    # 1: TOA in SYN and handshake ACK (what modules read)
    e = (PROXY1, 40001)
    c = Conn(cap, e, o).handshake(
        syn_opts=toa200("100.64.0.1", 5001), ack_opts=toa200("100.64.0.1", 5001)
    )
    c.send(HTTP_GET).reply(HTTP_OK).close()
    _x(
        cap,
        e,
        o,
        "toa",
        "ok",
        ("100.64.0.1", 5001),
        absent={"toa.syn_only", "toa.after_handshake", "client.missing"},
    )
    # 2: TOA only in the SYN
    e = (PROXY1, 40002)
    c = Conn(cap, e, o).handshake(syn_opts=toa200("100.64.0.2", 5002))
    c.send(HTTP_GET).reply(HTTP_OK).close()
    _x(cap, e, o, "toa", "ok", ("100.64.0.2", 5002), codes={"toa.syn_only"})
    # 3: TOA only on data (after the handshake)
    e = (PROXY1, 40003)
    c = Conn(cap, e, o).handshake()
    c.send(HTTP_GET, options=toa200("100.64.0.3", 5003)).reply(HTTP_OK).close()
    _x(cap, e, o, "toa", "ok", ("100.64.0.3", 5003), codes={"toa.after_handshake"})
    # 4: malformed TOA (kind 200 with length 6) in SYN and ACK
    bad = struct.pack("!BBH2s", 200, 6, 5004, b"\x64\x40")
    e = (PROXY1, 40004)
    c = Conn(cap, e, o).handshake(syn_opts=bad, ack_opts=bad)
    c.send(HTTP_GET).reply(HTTP_OK).close()
    _x(cap, e, o, "toa", "malformed", None, codes={"toa.malformed"})
    # 5: TOA in SYN, the handshake ACK full of options (timestamps + SACK blocks): no room
    full = NOP + NOP + TS_OPT + struct.pack("!BBIIIIII", 5, 26, 1, 2, 3, 4, 5, 6)  # 38 bytes
    e = (PROXY1, 40005)
    c = Conn(cap, e, o).handshake(syn_opts=toa200("100.64.0.5", 5005), ack_opts=full)
    c.send(HTTP_GET).reply(HTTP_OK).close()
    _x(cap, e, o, "toa", "ok", ("100.64.0.5", 5005), codes={"toa.no_room", "toa.syn_only"})
    # 6: no TOA at all, to the same port: the client address is missing
    e = (PROXY1, 40006)
    c = Conn(cap, e, o).handshake()
    c.send(HTTP_GET).reply(HTTP_OK).close()
    _x(cap, e, o, "none", "absent", None, codes={"client.missing"})
    # 7: TOA in the handshake ACK only, plus a TOA-kind option in the SYN-ACK from the origin
    e = (PROXY1, 40007)
    c = Conn(cap, e, o).handshake(
        synack_opts=toa200("9.9.9.9", 9), ack_opts=toa200("100.64.0.7", 5007)
    )
    c.send(HTTP_GET).reply(HTTP_OK).close()
    _x(
        cap,
        e,
        o,
        "toa",
        "ok",
        ("100.64.0.7", 5007),
        codes={"toa.from_origin"},
        absent={"toa.syn_only"},
    )
    # 8: TOA in SYN and ACK naming different clients
    e = (PROXY1, 40008)
    c = Conn(cap, e, o).handshake(
        syn_opts=toa200("100.64.0.8", 5008), ack_opts=toa200("100.64.0.88", 5008)
    )
    c.send(HTTP_GET).reply(HTTP_OK).close()
    _x(cap, e, o, "toa", "ok", ("100.64.0.88", 5008), codes={"toa.inconsistent"})
    return cap


def split_capture() -> Capture:
    cap = Capture("flow-proxy-split.pcap", "PROXY headers split, reordered, retransmitted, cut")
    o = (ORIGIN, 8080)
    # 1: v1 header in three segments
    e = (PROXY1, 41001)
    h = v1("100.64.1.1", ORIGIN, 6001, 8080)
    c = Conn(cap, e, o).handshake()
    c.send(h[:7]).send(h[7:20]).send(h[20:] + HTTP_GET).reply(HTTP_OK).close()
    _x(cap, e, o, "ppv1", "ok", ("100.64.1.1", 6001), proxy=(ORIGIN, 8080), codes={"proxy.split"})
    # 2: v2 header, segments out of order (second half first) and one retransmitted
    e = (PROXY1, 41002)
    h = v2("100.64.1.2", ORIGIN, 6002, 8080, tlvs=tlv(0x02, b"example.com"))
    c = Conn(cap, e, o).handshake()
    c.send(h[10:] + HTTP_GET, at=10).send(h[:10], at=0).send(h[:10], at=0).reply(HTTP_OK).close()
    _x(
        cap,
        e,
        o,
        "ppv2",
        "ok",
        ("100.64.1.2", 6002),
        proxy=(ORIGIN, 8080),
        codes={"proxy.split"},
        tlvs="authority=example.com",
    )
    # 3: overlapping segments: [0,20) then [10, end); the overlap carries the same bytes
    e = (PROXY1, 41003)
    h = v1("100.64.1.3", ORIGIN, 6003, 8080)
    c = Conn(cap, e, o).handshake()
    c.send(h[:20], at=0).send(h[10:] + HTTP_GET, at=10).reply(HTTP_OK).close()
    _x(
        cap,
        e,
        o,
        "ppv1",
        "ok",
        ("100.64.1.3", 6003),
        codes={"proxy.split"},
        absent={"stream.overlap_conflict"},
    )
    # 4: a retransmission whose first bytes differ from the original (first copy wins)
    e = (PROXY1, 41004)
    h = v1("100.64.1.4", ORIGIN, 6004, 8080)
    fake = v1("100.64.9.9", ORIGIN, 6004, 8080)
    c = Conn(cap, e, o).handshake()
    c.send(h[:20], at=0).send(fake[:20] + h[20:] + HTTP_GET, at=0).reply(HTTP_OK).close()
    _x(cap, e, o, "ppv1", "ok", ("100.64.1.4", 6004), codes={"stream.overlap_conflict"})
    # 5: snap length cuts into the header
    e = (PROXY1, 41005)
    h = v1("100.64.1.5", ORIGIN, 6005, 8080)
    c = Conn(cap, e, o).handshake()
    c.send(h + HTTP_GET, snap=14 + 20 + 20 + 12).reply(HTTP_OK).close()
    _x(cap, e, o, "ppv1", "incomplete", None, codes={"capture.truncated"})
    # 6: header incomplete at the end of the capture (the sender stops half-way)
    e = (PROXY1, 41006)
    h = v2("100.64.1.6", ORIGIN, 6006, 8080)
    c = Conn(cap, e, o).handshake()
    c.send(h[:20])
    _x(cap, e, o, "ppv2", "incomplete", None, codes={"proxy.incomplete"})
    return cap


def misc_capture() -> Capture:
    cap = Capture(
        "flow-proxy-misc.pcap",
        "stacked/LOCAL/CRC headers, origin rejections, port reuse, mid-stream, disagreement",
    )
    o = (ORIGIN, 9000)
    # 1: stacked headers (v1 then v2)
    e = (PROXY1, 42001)
    c = Conn(cap, e, o).handshake()
    c.send(v1("100.64.2.1", ORIGIN, 7001, 9000) + v2("100.64.2.99", ORIGIN, 7099, 9000) + HTTP_GET)
    c.reply(HTTP_OK).close()
    _x(cap, e, o, "ppv1", "ok", ("100.64.2.1", 7001), codes={"proxy.stacked"})
    # 2: LOCAL header (health check): no client
    e = (PROXY1, 42002)
    c = Conn(cap, e, o).handshake()
    c.send(v2(None, None, local=True)).close()
    _x(
        cap,
        e,
        o,
        "ppv2",
        "ok",
        None,
        pp_command="LOCAL",
        codes={"proxy.local"},
        absent={"origin.rejected"},
    )
    # 3: header followed by RST from the origin with no reply: rejected
    e = (PROXY1, 42003)
    c = Conn(cap, e, o).handshake()
    c.send(v1("100.64.2.3", ORIGIN, 7003, 9000) + HTTP_GET).close(origin_first=True, rst=True)
    _x(cap, e, o, "ppv1", "ok", ("100.64.2.3", 7003), codes={"origin.rejected"})
    # 4: header answered with HTTP 400: rejected
    e = (PROXY1, 42004)
    c = Conn(cap, e, o).handshake()
    c.send(v2("100.64.2.4", ORIGIN, 7004, 9000) + HTTP_GET).reply(HTTP_400).close(origin_first=True)
    _x(cap, e, o, "ppv2", "ok", ("100.64.2.4", 7004), codes={"origin.rejected"})
    # 5 + 6: port reuse: the same 4-tuple twice, different clients
    e = (PROXY1, 42005)
    c = Conn(cap, e, o, isn_e=100_000).handshake()
    c.send(v1("100.64.2.5", ORIGIN, 7005, 9000) + HTTP_GET).reply(HTTP_OK).close()
    _x(cap, e, o, "ppv1", "ok", ("100.64.2.5", 7005))
    c = Conn(cap, e, o, isn_e=900_000, isn_o=77_000).handshake()
    c.send(v1("100.64.2.6", ORIGIN, 7006, 9000) + HTTP_GET).reply(HTTP_OK).close()
    _x(cap, e, o, "ppv1", "ok", ("100.64.2.6", 7006))
    # 7: CRC32C mismatch
    e = (PROXY1, 42007)
    c = Conn(cap, e, o).handshake()
    c.send(v2("100.64.2.7", ORIGIN, 7007, 9000, crc=True, bad_crc=True) + HTTP_GET).close(rst=True)
    # malformed: a receiver drops it, so the flow has no client (the tree shows the addresses)
    _x(cap, e, o, "ppv2", "malformed", None, codes={"proxy.v2.crc32c_bad"})
    # 8: valid CRC32C and a unique id
    e = (PROXY1, 42008)
    c = Conn(cap, e, o).handshake()
    c.send(v2("100.64.2.8", ORIGIN, 7008, 9000, tlvs=tlv(0x05, b"uid-42008"), crc=True) + HTTP_GET)
    c.reply(HTTP_OK).close()
    _x(cap, e, o, "ppv2", "ok", ("100.64.2.8", 7008), tlvs="unique_id=uid-42008;crc32c=ok")
    # 9: malformed v1 (leading zero in an octet)
    e = (PROXY1, 42009)
    c = Conn(cap, e, o).handshake()
    c.send(b"PROXY TCP4 100.64.2.09 198.51.100.20 7009 9000\r\n" + HTTP_GET).close(rst=True)
    _x(cap, e, o, "ppv1", "malformed", None, codes={"proxy.v1.malformed"})
    # 10: TOA and PROXY disagree
    e = (PROXY1, 42010)
    c = Conn(cap, e, o).handshake(ack_opts=toa200("100.64.2.100", 7010))
    c.send(v1("100.64.2.10", ORIGIN, 7010, 9000) + HTTP_GET).reply(HTTP_OK).close()
    _x(cap, e, o, "ppv1", "ok", ("100.64.2.10", 7010), codes={"client.disagree"})
    # 11: no header, origin closes silently (it expects one), and the port carries PROXY elsewhere
    e = (PROXY1, 42011)
    c = Conn(cap, e, o).handshake()
    c.send(HTTP_GET).close(origin_first=True)
    _x(cap, e, o, "none", "absent", None, codes={"client.missing", "origin.closed_silently"})
    # 12: mid-stream with a header at the first captured payload (like the nDPI capture)
    e = (PROXY2, 42012)
    c = Conn(cap, e, (ORIGIN, 9443))
    c.send(v1("100.64.2.12", ORIGIN, 7012, 9443) + b"\x16\x03\x01\x00\x05hello")
    _x(cap, e, (ORIGIN, 9443), "ppv1", "ok", ("100.64.2.12", 7012), codes={"flow.mid_stream"})
    # 13: mid-stream without a header: unknown
    e = (PROXY2, 42013)
    c = Conn(cap, e, (ORIGIN, 9443))
    c.send(HTTP_GET, at=5000).reply(HTTP_OK)
    _x(cap, e, (ORIGIN, 9443), "unknown", "mid-stream", None, codes={"flow.mid_stream"})
    return cap


def udp_capture() -> Capture:
    cap = Capture(
        "flow-udp.pcap", "PROXY v2 over UDP: steady, changing client, missing header, timeout"
    )
    o = (ORIGIN, 5353)

    def dg(e, payload, dt=0.001):
        cap.add(udp_datagram(e[0], o[0], e[1], o[1], payload), dt=dt)

    def back(e, payload):
        cap.add(udp_datagram(o[0], e[0], o[1], e[1], payload))

    e = (PROXY1, 43001)
    for i in range(3):
        dg(e, v2("100.64.3.1", ORIGIN, 8001, 5353, dgram=True) + b"query%d" % i)
        back(e, b"answer")
    _x(
        cap,
        e,
        o,
        "ppv2",
        "ok",
        ("100.64.3.1", 8001),
        transport="udp",
        absent={"udp.client_changed", "udp.header_missing"},
    )
    e = (PROXY1, 43002)
    dg(e, v2("100.64.3.2", ORIGIN, 8002, 5353, dgram=True) + b"q")
    dg(e, v2("100.64.3.22", ORIGIN, 8022, 5353, dgram=True) + b"q")
    dg(e, b"no header here")
    _x(
        cap,
        e,
        o,
        "ppv2",
        "ok",
        ("100.64.3.2", 8002),
        transport="udp",
        codes={"udp.client_changed", "udp.header_missing"},
    )
    e = (PROXY1, 43003)
    dg(e, v2("100.64.3.3", ORIGIN, 8003, 5353, dgram=True)[:20])
    # cut short inside a whole datagram, which cannot continue: malformed, not incomplete
    _x(cap, e, o, "ppv2", "malformed", None, transport="udp", codes={"proxy.v2.malformed"},
       absent={"proxy.incomplete"})
    # same 4-tuple after 5 idle minutes: a new flow
    e = (PROXY1, 43001)
    dg(e, v2("100.64.3.4", ORIGIN, 8004, 5353, dgram=True) + b"later", dt=300.0)
    _x(cap, e, o, "ppv2", "ok", ("100.64.3.4", 8004), transport="udp")
    return cap


def spoof_capture() -> Capture:
    cap = Capture("flow-spoof.pcap", "PROXY/TOA from a trusted proxy and from an outside address")
    o = (ORIGIN, 443)
    e = (PROXY1, 44001)
    c = Conn(cap, e, o).handshake()
    c.send(v2("100.64.4.1", ORIGIN, 9001, 443) + b"\x16\x03\x01").reply(b"\x16\x03\x03").close()
    _x(cap, e, o, "ppv2", "ok", ("100.64.4.1", 9001), absent={"client.untrusted"})
    e = (ROGUE, 44002)
    c = Conn(cap, e, o).handshake()
    c.send(v2("1.2.3.4", ORIGIN, 9002, 443) + b"\x16\x03\x01").reply(b"\x16\x03\x03").close()
    _x(cap, e, o, "ppv2", "ok", ("1.2.3.4", 9002), codes={"client.untrusted"})
    e = (ROGUE, 44003)
    c = Conn(cap, e, o).handshake(
        syn_opts=toa200("5.6.7.8", 9003), ack_opts=toa200("5.6.7.8", 9003)
    )
    c.send(b"\x16\x03\x01").close()
    _x(cap, e, o, "toa", "ok", ("5.6.7.8", 9003), codes={"client.untrusted"})
    return cap


def capture_end_capture() -> Capture:
    """Connections the capture ends on before they sent anything: a missing client address
    is certain after a handshake without TOA, not before the first data on a PROXY port."""
    cap = Capture(
        "flow-capture-end.pcap",
        "the capture ends right after handshakes, on a TOA port and on a PROXY port",
    )
    pp, toa = (ORIGIN, 9100), (ORIGIN, 9200)
    # 1, 2: the PROXY port and the TOA port carry client addresses
    e = (PROXY1, 45001)
    Conn(cap, e, pp).handshake().send(v1("100.64.5.1", ORIGIN, 8001, 9100) + HTTP_GET).reply(
        HTTP_OK
    ).close()
    _x(cap, e, pp, "ppv1", "ok", ("100.64.5.1", 8001))
    e = (PROXY1, 45002)
    opt = toa200("100.64.5.2", 8002)
    Conn(cap, e, toa).handshake(syn_opts=opt, ack_opts=opt).send(HTTP_GET).reply(HTTP_OK).close()
    _x(cap, e, toa, "toa", "ok", ("100.64.5.2", 8002))
    # 3: data without a header on the PROXY port: missing
    e = (PROXY1, 45003)
    Conn(cap, e, pp).handshake().send(HTTP_GET).reply(HTTP_OK).close()
    _x(cap, e, pp, "none", "absent", None, codes={"client.missing"})
    # 4: a handshake without TOA on the TOA port, then the capture ends: missing (the
    # handshake ACK is where receiving modules read it)
    e = (PROXY1, 45004)
    Conn(cap, e, toa).handshake()
    _x(cap, e, toa, "none", "absent", None, codes={"client.missing"})
    # 5: a handshake on the PROXY port, then the capture ends: its header may have been next
    e = (PROXY1, 45005)
    Conn(cap, e, pp).handshake()
    _x(cap, e, pp, "none", "absent", None, absent={"client.missing"})
    return cap


def attempts_capture() -> Capture:
    """Connection attempts that never complete, each ended by the 5 s attempt timeout
    (capture time) with a status that says how far it got, beside a slow handshake that
    does complete and an ordinary connection that keeps the capture's clock going."""
    cap = Capture(
        "flow-attempts.pcap",
        "attempts that never complete: unanswered, half-open, refused; a slow handshake",
    )
    orig = (ORIGIN, 8080)
    tick = Conn(cap, (PROXY2, 43600), orig).handshake()
    _x(cap, (PROXY2, 43600), orig, "none", "absent")
    a = Conn(cap, (PROXY1, 43601), orig)  # SYN, retransmitted 1 s and 3 s later: unanswered
    b = Conn(cap, (PROXY1, 43602), orig)  # SYN-ACK (retransmitted), never acknowledged
    c = Conn(cap, (PROXY1, 43603), orig)  # the origin resets the SYN
    d = Conn(cap, (PROXY1, 43604), orig)  # a slow handshake: the ACK 4 s later, a request
    for conn in (a, c):
        conn._e(conn.isn_e, 0, SYN)
    b.handshake(ack=False)
    c._o(0, c.isn_e + 1, RST | ACK)
    d.handshake(ack=False)
    for sec in range(1, 9):
        cap.t += 1.0
        tick.send(b"x")
        if sec in (1, 3):
            a._e(a.isn_e, 0, SYN)
        if sec == 1:
            b._o(b.isn_o, b.isn_e + 1, SYN | ACK)
        if sec == 4:
            d._e(d.se, d.so, ACK)
            d.send(v1("100.64.12.4", ORIGIN, 12004, 8080) + HTTP_GET).reply(HTTP_OK).close()
    tick.close()
    _x(cap, (PROXY1, 43601), orig, "none", "unanswered")
    _x(cap, (PROXY1, 43602), orig, "none", "half-open")
    _x(cap, (PROXY1, 43603), orig, "none", "refused")
    _x(cap, (PROXY1, 43604), orig, "ppv1", "ok", ("100.64.12.4", 12004))
    return cap


TRUSTED = f"{PROXY1}/31"


def all_captures() -> list[Capture]:
    return [
        toa_capture(),
        split_capture(),
        misc_capture(),
        udp_capture(),
        spoof_capture(),
        capture_end_capture(),
        attempts_capture(),
    ]


SCENARIOS = {c.name: c for c in all_captures()}


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "pcaps"
    out.mkdir(parents=True, exist_ok=True)
    for c in all_captures():
        write_pcap(out / c.name, c.frames)
        print(f"{out / c.name}: {len(c.frames)} frames, {len(c.expect)} flows")


if __name__ == "__main__":
    main(sys.argv)
