"""Write a SYN-flood capture: N SYNs from N distinct source address/port pairs to one port.

``python bench/gen_flood.py OUT.pcap [SYNS] [RATE]`` (defaults: 2,000,000 SYNs at
100,000 SYN/s, i.e. 20 s of capture time; 70 bytes a record, 140 MB for 2M)

Nine SYNs in ten come from spoofed addresses spread over 10.0.0.0/8 (every
source address distinct), one in ten from twenty "bots" in 203.0.113.0/24
(distinct source ports): so a flood summary has top sources to name. Among
the flood, one SYN in a thousand is answered with a SYN-ACK that is never
acknowledged (half-open) and one in a thousand with a RST (refused); every
10,000th SYN position a real connection runs its handshake, a request
(PROXY v1, v2, or TOA kind 200 in the SYN and the handshake ACK) and a FIN
exchange, so correctness stays visible in the output. The flood itself is
built with numpy (a few seconds for 10M); the few real packets with the
test generator's ``tcp_segment``.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gen"))
from flow_pcaps import ACK, FIN, PSH, RST, SYN, tcp_segment, toa200, v1, v2  # noqa: E402

ORIGIN = "198.51.100.20"
PORT = 80
T0 = 1_700_000_000.0
BOTS = 20
CHUNK = 1 << 20
ETH = bytes.fromhex("0200000000020200000000010800")
# indexes (positions in the flood) of the special cases
HALF_OPEN_EVERY = 1000  # position % 1000 == 1: SYN-ACK, never acknowledged
REFUSED_EVERY = 1000  # position % 1000 == 2: RST, ACK
REAL_EVERY = 10_000  # position % 10000 == 5: a real proxied connection starts here


def source(i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source IPv4 (as integers) and port of flood SYN number ``i`` (all pairs distinct)."""
    bot = i % 10 == 9
    k = i // 10
    spoof_ip = 0x0A000000 | ((i * 0x9E3779B1) & 0xFFFFFF)  # odd multiplier: a bijection mod 2**24
    bot_ip = 0xCB007101 + k % BOTS  # 203.0.113.1 ...
    ip = np.where(bot, bot_ip, spoof_ip)
    port = np.where(bot, 1024 + (k // BOTS) % 64000, 1024 + (i * 7919) % 64000)
    return ip.astype(np.int64), port.astype(np.int64)


def _fold(s: np.ndarray) -> np.ndarray:
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def flood_records(i: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """pcap records (n, 70) of flood SYNs ``i`` and their timestamps (seconds)."""
    n = i.size
    ts = T0 + i / rate
    ip, port = source(i)
    seq = (i * 2654435761 + 12345) & 0xFFFFFFFF
    dst = int.from_bytes(bytes(int(x) for x in ORIGIN.split(".")), "big")
    r = np.zeros((n, 70), dtype=np.uint8)
    sec = ts.astype(np.int64)
    usec = np.round((ts - sec) * 1e6).astype(np.int64)
    hdr = np.zeros((n, 4), dtype="<u4")
    hdr[:, 0], hdr[:, 1], hdr[:, 2], hdr[:, 3] = sec, usec, 54, 54
    r[:, :16] = hdr.view(np.uint8).reshape(n, 16)
    f = r[:, 16:]
    f[:, :14] = np.frombuffer(ETH, dtype=np.uint8)

    def put(col: int, v: np.ndarray | int, width: int) -> None:
        for b in range(width):
            f[:, col + b] = (np.asarray(v) >> (8 * (width - 1 - b))) & 0xFF

    # IPv4: 20 bytes, DF, TTL 64, id from the index
    put(14, 0x4500, 2)
    put(16, 40, 2)
    put(18, i & 0xFFFF, 2)
    put(20, 0x4000, 2)
    put(22, 0x4006, 2)
    put(26, ip, 4)
    put(30, dst, 4)
    w = f[:, 14:34].astype(np.int64)
    put(24, _fold((w[:, 0::2] * 256 + w[:, 1::2]).sum(axis=1)), 2)
    # TCP: SYN, window 64240, no options
    put(34, port, 2)
    put(36, PORT, 2)
    put(38, seq, 4)
    put(46, 0x5002, 2)
    put(48, 64240, 2)
    t = f[:, 34:54].astype(np.int64)
    pseudo = (ip >> 16) + (ip & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + 6 + 20
    put(50, _fold((t[:, 0::2] * 256 + t[:, 1::2]).sum(axis=1) + pseudo), 2)
    return r, ts


def _ip(v: int) -> str:
    return ".".join(str((v >> s) & 255) for s in (24, 16, 8, 0))


def specials(total: int, rate: float) -> list[tuple[float, bytes]]:
    """The packets that are not plain flood SYNs: replies to some SYNs, real connections."""
    out: list[tuple[float, bytes]] = []
    gap = 1.0 / rate
    for pos in range(total):
        m = pos % HALF_OPEN_EVERY
        if m not in (1, 2) and pos % REAL_EVERY != 5:
            continue
        ip, port = source(np.array([pos]))
        src, sp = _ip(int(ip[0])), int(port[0])
        t = T0 + pos * gap
        seq = (pos * 2654435761 + 12345) & 0xFFFFFFFF
        if pos % REAL_EVERY == 5:
            _real(out, pos // REAL_EVERY, t + gap / 2)
        elif m == 1:  # SYN-ACK never acknowledged
            out.append((t + 0.0002, tcp_segment(ORIGIN, src, PORT, sp, 77, seq + 1, SYN | ACK)))
        else:  # refused
            out.append((t + 0.0002, tcp_segment(ORIGIN, src, PORT, sp, 0, seq + 1, RST | ACK)))
    out.sort(key=lambda x: x[0])
    return out


def _real(out: list[tuple[float, bytes]], n: int, t: float) -> None:
    """A proxied connection from egress 192.0.2.x: handshake, request, FIN exchange."""
    e, ep = f"192.0.2.{n % 200 + 1}", 30000 + n % 30000
    client, cp = f"100.64.{n // 250 % 250}.{n % 250 + 1}", 40000 + n % 20000
    kind = n % 3
    toa = toa200(client, cp) if kind == 0 else b""
    hdr = b"" if kind == 0 else v1(client, ORIGIN, cp, PORT) if kind == 1 else v2(client, ORIGIN, cp, PORT)
    req = hdr + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    a, b = 1000, 5000
    pkts = [
        (e, ORIGIN, ep, PORT, a, 0, SYN, b"", toa),
        (ORIGIN, e, PORT, ep, b, a + 1, SYN | ACK, b"", b""),
        (e, ORIGIN, ep, PORT, a + 1, b + 1, ACK, b"", toa),
        (e, ORIGIN, ep, PORT, a + 1, b + 1, ACK | PSH, req, b""),
        (ORIGIN, e, PORT, ep, b + 1, a + 1 + len(req), ACK | PSH, resp, b""),
        (e, ORIGIN, ep, PORT, a + 1 + len(req), b + 1 + len(resp), FIN | ACK, b"", b""),
        (ORIGIN, e, PORT, ep, b + 1 + len(resp), a + 2 + len(req), FIN | ACK, b"", b""),
        (e, ORIGIN, ep, PORT, a + 2 + len(req), b + 2 + len(resp), ACK, b"", b""),
    ]
    for k, (s, d, sp, dp, sq, ak, fl, pay, opt) in enumerate(pkts):
        out.append((t + k * 0.0003, tcp_segment(s, d, sp, dp, sq, ak, fl, pay, opt)))


def write(out: Path, total: int, rate: float = 100_000.0) -> dict[str, int]:
    """Write the flood capture; returns what it holds (for tests and the benchmark)."""
    extra = specials(total, rate)
    q = 0
    with open(out, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for start in range(0, total, CHUNK):
            i = np.arange(start, min(total, start + CHUNK), dtype=np.int64)
            rec, ts = flood_records(i, rate)
            end_ts = ts[-1] if start + CHUNK >= total else T0 + (start + CHUNK) / rate
            prev = 0
            while q < len(extra) and (extra[q][0] <= end_ts or start + CHUNK >= total):
                t, frame = extra[q]
                cut = int(np.searchsorted(ts, t, side="right"))
                fh.write(rec[prev:cut].tobytes())
                prev = cut
                sec = int(t)
                usec = int(round((t - sec) * 1e6))
                fh.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
                q += 1
            fh.write(rec[prev:].tobytes())
    real = len(range(5, total, REAL_EVERY))
    half = len(range(1, total, HALF_OPEN_EVERY))
    refused = len(range(2, total, REFUSED_EVERY))
    return {
        "syns": total,
        "real": real,
        "half_open": half,
        "refused": refused,
        "unanswered": total - half - refused,
        "flows": total + real,
        "packets": total + half + refused + 8 * real,
    }


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Write a SYN flood capture (with some real flows).")
    ap.add_argument("out", type=Path, help="the pcap to write")
    ap.add_argument("syns", type=int, nargs="?", default=2_000_000, help="SYNs (default 2M)")
    ap.add_argument("rate", type=float, nargs="?", default=100_000.0, help="SYNs per second")
    args = ap.parse_args()
    info = write(args.out, args.syns, args.rate)
    print(f"{args.out}: {info}")


if __name__ == "__main__":
    main()
