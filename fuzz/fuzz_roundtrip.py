"""Decode of a valid packet round-trips against dpkt and scapy: where either library decodes a
frame unambiguously, pcapip's columns say what it says.

Every input is read twice: as a frame, as the ``decode`` target reads it (link type, bytes),
and as the field values of a well-formed frame ``valid.build`` makes of it, so the comparison
runs on most executions, not only when random bytes happen to make a valid packet. Both
frames go through pcapip's pure loop and its compiled kernel.

Compared (each library on its own; either may decline): Ethernet II (with at most two VLAN
tags for dpkt, any stack of 802.1Q/802.1ad for scapy), Linux SLL and SLL2, BSD null and
OpenBSD loop with family 2, 24, 28 or 30, raw IPv4/IPv6 (scapy has no link type 14); then an
IPv4 packet that is not a fragment, or an IPv6 packet whose extension headers are only
hop-by-hop, routing, destination options, atomic fragment headers (offset 0, no more
fragments) or AH (dpkt; scapy's AH is not loaded), at most 16; then a TCP header whose data
offset lies inside the IP packet, or a UDP header whose length is exactly what the IP packet
holds. The whole IP packet must be captured (IP total length / payload length, 0 meaning
"to the end of the frame", within the frame; an Ethernet trailer after it is fine). Then
the IP version, addresses, protocol, IP and transport offsets, ports, TCP flags (9 bits),
the TCP option bytes, payload offset, length and bytes, the ethertype after the tags, and
the VLAN ids (pcapip's columns hold none: ``pcapip show``'s tree gives them) must agree,
with status 0.

Skipped, because the libraries' answer is not pcapip's question or not unambiguous: a frame
cut before its IP packet ends (dpkt and scapy keep what is there without a word); IP
fragments; IP-in-IP, GRE, and UDP to a tunnel port (pcapip opens them, the ``tunnels``
target checks them); MPLS and PPPoE (dpkt guesses IP behind labels from a nibble); a UDP
length other than what the IP packet holds (dpkt's UDP payload is the rest of the IP packet,
scapy's the UDP length); IPv6 ESP, mobility or unknown extension headers; for scapy, a
routing header of odd length (it reads type-0 addresses, 16 bytes each, and leaves the last
8 bytes to TCP); more than 16 extension headers (pcapip's limit); VLAN stacks dpkt stops in
(a third tag, or a second that is not 802.1Q); loopback families other than the BSD ones
(scapy binds the host's AF_INET6, 10 on Linux); 802.3 frames; and anything either library
fails on (dpkt 1.9.8 raises AttributeError on an IPv6 packet whose first extension header
is a fragment header and whose last is not). IP and TCP checksums are read by nobody.
"""

from __future__ import annotations

import struct
import sys

import atheris

with atheris.instrument_imports(include=["pcapip", "common"]):
    from common import LINKTYPES, Broken, batch_of, frame_seed, frames

    from pcapip.decode import decode, kernel, kernel_l4, kernel_tunnels  # noqa: F401
    from pcapip.decode.tunnels import udp_tunnel_ports
    from pcapip.dissect.frame import dissect_frame

from independent import dpkt_view, scapy_view  # noqa: E402
from valid import build  # noqa: E402

TUNNEL_PORTS = frozenset(udp_tunnel_ports())
# executions, and those where a library compared the raw frame or the built one
COUNTS = {"runs": 0, "dpkt": 0, "scapy": 0, "dpkt built": 0, "scapy built": 0}
COMPARED = (
    "ipver",
    "proto",
    "ip_off",
    "l4_off",
    "sport",
    "dport",
    "tcp_flags",
    "opt_len",
    "pay_off",
    "pay_len",
    "ethertype",
)


def _pcapip(pk, i: int) -> dict:
    """pcapip's row ``i`` in the shape of a library's view."""
    row = {name: int(getattr(pk, name)[i]) for name in COMPARED}
    row["src"] = ((int(pk.src_hi[i]) << 64) | int(pk.src_lo[i])).to_bytes(16, "big")
    row["dst"] = ((int(pk.dst_hi[i]) << 64) | int(pk.dst_lo[i])).to_bytes(16, "big")
    row.update(
        status=int(pk.status[i]),
        options=pk.options(i),
        payload=pk.payload(i),
        pay_cap=int(pk.pay_cap[i]),
    )
    return row


def _vlan_ids(frame: bytes, lt: int) -> list[int]:
    """The VLAN ids ``pcapip show`` draws, outermost first."""
    out: list[int] = []
    stack = list(dissect_frame(frame, lt))
    while stack:
        f = stack.pop(0)
        if f.name in ("vlan.id", "ieee8021ad.id"):
            out.append(int(f.value))
        stack[:0] = f.children or []
    return out


def _agree(who: str, view: dict, got: dict, frame: bytes, lt: int) -> None:
    def differ(what: str, theirs: object, ours: object) -> None:
        raise Broken(
            f"{who} and pcapip differ in {what}: {theirs!r} vs {ours!r} "
            f"(link type {lt}, frame {frame.hex()})"
        )

    if got["status"] != 0:
        differ("status (a well-formed packet)", 0, got["status"])
    for name in ("src", "dst", *COMPARED):
        if name in view and view[name] != got[name]:
            differ(name, view[name], got[name])
    if view["proto"] == 17 and got["tcp_flags"] != 0:
        differ("tcp_flags of UDP", 0, got["tcp_flags"])
    pay = frame[view["pay_off"] : view["pay_off"] + view["pay_len"]]
    if got["payload"] != pay or got["pay_cap"] != len(pay):
        differ("payload bytes", pay, got["payload"])
    if view["proto"] == 6:
        opts = frame[view["l4_off"] + 20 : view["pay_off"]]
        if got["options"] != opts:
            differ("TCP option bytes", opts, got["options"])
    if view["vlans"] and _vlan_ids(frame, lt) != view["vlans"]:
        differ("VLAN ids", view["vlans"], _vlan_ids(frame, lt))


def check(lt: int, frame: bytes) -> set[str]:
    """pcapip's pure and compiled decode of one frame against dpkt's and scapy's: the
    libraries that compared it."""
    b = batch_of(struct.pack("<H", lt) + frame)
    rows = [_pcapip(decode(b, backend=be), 0) for be in ("pure", "compiled")]
    compared = set()
    for who, view_of in (("dpkt", dpkt_view), ("scapy", scapy_view)):
        view = view_of(lt, frame)
        if view is None or (view["proto"] == 17 and TUNNEL_PORTS & {view["dport"]}):
            continue
        compared.add(who)
        for got in rows:
            _agree(who, view, got, frame, lt)
    return compared


def test_one(data: bytes) -> None:
    if len(data) < 2:
        return
    lt = struct.unpack("<H", data[:2])[0]
    lt = lt if lt in LINKTYPES else LINKTYPES[lt % len(LINKTYPES)]
    raw = check(lt, data[2:])
    built = check(*build(atheris.FuzzedDataProvider(data)))
    COUNTS["runs"] += 1
    for who in ("dpkt", "scapy"):
        COUNTS[who] += who in raw or who in built
        COUNTS[f"{who} built"] += who in built
    n = COUNTS["runs"]
    if (n & (n - 1) == 0 and n >= 1024) or n % 65536 == 0:  # as libFuzzer reports
        print(
            f"#{n} roundtrip: compared with dpkt {COUNTS['dpkt'] / n:.0%} "
            f"(the built frame {COUNTS['dpkt built'] / n:.0%}), scapy "
            f"{COUNTS['scapy'] / n:.0%} ({COUNTS['scapy built'] / n:.0%}) of the executions",
            file=sys.stderr,
            flush=True,
        )


def seeds():
    """Frames of the bundled captures, random field values, and built frames as frames."""
    import random

    rnd = random.Random(7)
    for k, (lt, frame) in enumerate(frames(200)):
        if k % 2 == 0:
            yield frame_seed(lt, frame)
    for _ in range(200):
        yield bytes(rnd.randrange(256) for _ in range(rnd.randrange(16, 400)))
    for _ in range(100):  # mutations of valid packets
        data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(16, 400)))
        yield frame_seed(*build(atheris.FuzzedDataProvider(data)))


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
