"""Write a synthetic capture for the analyze benchmark: many proxied connections.

``python bench/make_flow_bench.py OUT.pcap [PACKETS] [PACKETS_PER_FLOW]``

Each connection: handshake (a quarter carry TOA kind 200 in the SYN and the
handshake ACK), a PROXY v1 or v2 header (or nothing) with the first request,
then data segments alternating direction, and a FIN exchange. Connections
are interleaved eight at a time, so batches mix flows like a real capture.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gen"))
from flow_pcaps import (  # noqa: E402
    ACK,
    FIN,
    PSH,
    SYN,
    tcp_segment,
    toa200,
    v1,
    v2,
)


def main() -> None:
    out = Path(sys.argv[1])
    total = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    per_flow = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    write(out, total, per_flow)


def write(out: Path, total: int, per_flow: int) -> None:
    """Write ``total`` packets of ``per_flow``-packet connections to ``out``."""
    origin = "198.51.100.20"
    body = b"x" * 1200
    written = 0
    t = 1_700_000_000.0
    with open(out, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

        def put(frame: bytes) -> None:
            nonlocal written, t
            t += 0.00001
            sec = int(t)
            fh.write(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(frame), len(frame)))
            fh.write(frame)
            written += 1

        conn = 0
        while written < total:
            group = []
            for _ in range(8):
                conn += 1
                e = (f"192.0.2.{conn % 200 + 1}", 1024 + conn % 60000)
                client = (
                    f"100.{64 + conn % 60}.{conn // 250 % 250}.{conn % 250 + 1}",
                    2000 + conn % 50000,
                )
                kind = conn % 4
                toa = toa200(*client) if kind == 0 else b""
                hdr = (
                    b""
                    if kind == 0
                    else (
                        v1(client[0], origin, client[1], 443)
                        if kind == 1
                        else v2(client[0], origin, client[1], 443)
                        if kind == 2
                        else b""
                    )
                )
                frames = [
                    tcp_segment(e[0], origin, e[1], 443, 1000, 0, SYN, options=toa),
                    tcp_segment(origin, e[0], 443, e[1], 5000, 1001, SYN | ACK),
                    tcp_segment(e[0], origin, e[1], 443, 1001, 5001, ACK, options=toa),
                    tcp_segment(
                        e[0],
                        origin,
                        e[1],
                        443,
                        1001,
                        5001,
                        ACK | PSH,
                        hdr + b"GET / HTTP/1.1\r\n\r\n",
                    ),
                ]
                se, so = 1001 + len(hdr) + 18, 5001
                for i in range(max(0, per_flow - 7)):
                    if i % 2:
                        frames.append(tcp_segment(e[0], origin, e[1], 443, se, so, ACK))
                    else:
                        frames.append(tcp_segment(origin, e[0], 443, e[1], so, se, ACK | PSH, body))
                        so += len(body)
                frames += [
                    tcp_segment(e[0], origin, e[1], 443, se, so, FIN | ACK),
                    tcp_segment(origin, e[0], 443, e[1], so, se + 1, FIN | ACK),
                    tcp_segment(e[0], origin, e[1], 443, se + 1, so + 1, ACK),
                ]
                group.append(frames)
            i = 0
            while any(group) and written < total:
                f = group[i % len(group)]
                if f:
                    put(f.pop(0))
                i += 1
    print(f"{out}: {written} packets, {conn} connections")


if __name__ == "__main__":
    main()
