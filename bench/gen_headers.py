"""Write a capture whose every connection carries a client header the compiled flow loop
does not read itself, so the per-packet Python rules parse every one of them.

``python bench/gen_headers.py OUT.pcap SHAPE [CONNECTIONS]`` (default 20,000 connections,
10 or 11 packets each, 64 interleaved at a time). SHAPE is one of:

* ``v2-inet6``: a PROXY v2 INET6 header without TLVs (the compiled loop reads v2 INET only)
* ``v2-tlv``: a PROXY v2 INET header with ALPN, authority, unique id and CRC32C TLVs,
  and a clean kind-254 IPv4 TOA on every client packet (once the header made the flow
  Python's, each TOA is parsed by the rules too)
* ``v1-tcp6``: a PROXY v1 TCP6 line
* ``toa-ipv6``: a kind-254 length-20 IPv6 TOA (dpvs-ipv6) in the SYN and the handshake ACK
* ``v1-split``: a clean PROXY v1 TCP4 line split over two segments (the loop reads a header
  from one segment only) and a clean kind-254 IPv4 TOA on every client packet: the shapes
  the loop reads, made the rules' by the split

It measures what parsing headers in Python costs (``bench/README.md``, "Headers the
compiled loop hands over"). Frames come from the test generator's ``tcp_segment``.
"""

from __future__ import annotations

import ipaddress
import random
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gen"))
from flow_pcaps import ACK, FIN, PSH, SYN, TS_OPT, tcp_segment, tlv, v1, v2  # noqa: E402

ORIGIN = "198.51.100.20"
PORT = 80
T0 = 1_700_000_000.0
SHAPES = ("v2-inet6", "v2-tlv", "v1-tcp6", "toa-ipv6", "v1-split")
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
REQUEST = b"GET / HTTP/1.1\r\nHost: bench.example\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
SYN_OPTS = b"\x02\x04\x05\xb4\x04\x02" + TS_OPT + b"\x01\x03\x03\x07"


def _client(i: int) -> tuple[str, str, int]:
    """(IPv4 client, IPv6 client, client port) of connection ``i``."""
    v4 = str(ipaddress.IPv4Address(0xCB007100 + i % 250 + 1))  # 203.0.113.x
    v6 = f"2001:db8::{i % 65000 + 1:x}"
    return v4, v6, 1024 + i % 60000


def _v2_inet6(src: str, dst: str, sport: int, dport: int) -> bytes:
    body = (
        ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
        + struct.pack("!HH", sport, dport)
    )
    return V2_SIG + b"\x21\x21" + struct.pack("!H", len(body)) + body


def _toa254(ip: str, port: int) -> bytes:
    a = ipaddress.ip_address(ip)
    return struct.pack("!BBH", 254, 4 + len(a.packed), port) + a.packed


def connection(shape: str, i: int) -> list[tuple[int, int, bytes, bytes]]:
    """The packets of connection ``i``: (direction 0 client / 1 origin, flags, options, payload)."""
    v4, v6, cport = _client(i)
    header = b""
    syn_toa = ack_toa = every_toa = b""
    if shape == "v2-inet6":
        header = _v2_inet6(v6, "2001:db8::20", cport, 443)
    elif shape == "v2-tlv":
        tlvs = tlv(1, b"h2") + tlv(2, b"bench.example") + tlv(5, b"conn-%08d" % i)
        header = v2(v4, "10.0.0.2", cport, 443, tlvs=tlvs, crc=True)
        syn_toa = ack_toa = every_toa = _toa254(v4, cport)
    elif shape == "v1-tcp6":
        header = v1(v6, "2001:db8::20", cport, 443)
    elif shape == "toa-ipv6":
        syn_toa = ack_toa = _toa254(v6, cport)
    elif shape == "v1-split":
        header = v1(v4, "10.0.0.2", cport, 443)
        syn_toa = ack_toa = every_toa = _toa254(v4, cport)
    else:
        raise SystemExit(f"unknown shape {shape!r}: one of {', '.join(SHAPES)}")
    first = [(0, PSH | ACK, TS_OPT + every_toa, header + REQUEST)]
    if shape == "v1-split":
        first = [(0, ACK, TS_OPT + every_toa, header[:20]),
                 (0, PSH | ACK, TS_OPT + every_toa, header[20:] + REQUEST)]
    return [
        (0, SYN, SYN_OPTS + syn_toa, b""),
        (1, SYN | ACK, SYN_OPTS, b""),
        (0, ACK, TS_OPT + ack_toa, b""),
        *first,
        (1, ACK, TS_OPT, b""),
        (1, PSH | ACK, TS_OPT, RESPONSE),
        (0, ACK, TS_OPT + every_toa, b""),
        (0, FIN | ACK, TS_OPT + every_toa, b""),
        (1, FIN | ACK, TS_OPT, b""),
        (0, ACK, TS_OPT + every_toa, b""),
    ]


def generate(path: Path, shape: str, connections: int, *, concurrency: int = 64) -> int:
    """Write the capture; returns the number of packets."""
    rng = random.Random(12)
    pending: list[tuple[int, list, list[int]]] = []  # (index, packets, [next, cseq, sseq])
    started = written = 0
    ts = T0
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        while started < connections or pending:
            while started < connections and len(pending) < concurrency:
                state = [0, rng.getrandbits(32), rng.getrandbits(32)]
                pending.append((started, connection(shape, started), state))
                started += 1
            k = rng.randrange(len(pending))
            i, packets, state = pending[k]
            direction, flags, opts, payload = packets[state[0]]
            state[0] += 1
            proxy = f"10.1.{i // 250 % 250}.{i % 250 + 1}"
            sport = 1024 + i % 60000
            seq, ack = (state[1], state[2]) if direction == 0 else (state[2], state[1])
            if direction == 0:
                frame = tcp_segment(proxy, ORIGIN, sport, PORT, seq, ack, flags, payload, opts)
            else:
                frame = tcp_segment(ORIGIN, proxy, PORT, sport, seq, ack, flags, payload, opts)
            state[1 + direction] += len(payload) + (1 if flags & (SYN | FIN) else 0)
            ts += 0.0001
            sec = int(ts)
            fh.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(frame), len(frame)))
            fh.write(frame)
            written += 1
            if state[0] == len(packets):
                pending[k] = pending[-1]
                pending.pop()
    return written


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    n = generate(Path(argv[0]), argv[1], int(argv[2]) if len(argv) > 2 else 20_000)
    print(f"{argv[0]}: {n} packets")


if __name__ == "__main__":
    main(sys.argv[1:])
