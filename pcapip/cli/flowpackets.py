"""The packets that show what an origin received on a flow without a client header.

``pcapip show --flow`` prints the packets that carried a TOA option or a PROXY
header; a flow with neither (``client.missing``, ``none``, a malformed UDP
header...) is exactly the one an operator must look at, so it gets the
handshake and the first data segment in each direction instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from typing import Any

_SYN, _ACK = 0x02, 0x10
_V4_MAPPED = 0xFFFF_0000_0000


def _halves(text: str) -> tuple[int, int]:
    """An address as the decoder's 128-bit halves (IPv4 stored IPv4-mapped)."""
    a = ipaddress.ip_address(text)
    if a.version == 4:
        return 0, _V4_MAPPED | int(a)
    return int(a) >> 64, int(a) & ((1 << 64) - 1)


class _Picker:
    """Keeps the first packet of each role: SYN, SYN-ACK, the handshake's ACK, and the
    first payload from each side (UDP: the first datagram from each side)."""

    def __init__(self, tcp: bool) -> None:
        self.tcp = tcp
        roles = ("SYN", "SYN-ACK", "ACK") if tcp else ()
        self.wanted = [*roles, "data from egress", "data from origin"]
        self.found: dict[str, int] = {}

    def offer(self, frame: int, from_egress: bool, flags: int, payload: int) -> None:
        if self.tcp and flags & _SYN:
            self._keep("SYN-ACK" if flags & _ACK else "SYN", frame)
        elif payload > 0:
            self._keep("data from egress" if from_egress else "data from origin", frame)
        elif self.tcp and from_egress and flags & _ACK and "SYN-ACK" in self.found:
            self._keep("ACK", frame)

    def _keep(self, role: str, frame: int) -> None:
        self.found.setdefault(role, frame)

    @property
    def done(self) -> bool:
        return len(self.found) == len(self.wanted)

    def result(self) -> tuple[list[tuple[int, str]], list[str]]:
        found = sorted((n, role) for role, n in self.found.items())
        return found, [r for r in self.wanted if r not in self.found]


def first_packets(
    capture: str, row: dict[str, Any], toa_kinds: Collection[int]
) -> tuple[list[tuple[int, str]], list[str]]:
    """(packet number, role) of the flow's handshake and first data segments, in packet
    order, and the roles no packet had (the origin never answered, ...).

    The flow is matched by its addresses, ports and transport within its time span
    (``row`` as ``pcapip analyze`` gives it, times in nanoseconds), so a later
    connection that reuses the same ports is not mixed in.
    """
    import numpy as np

    from pcapip.decode import decode
    from pcapip.sources import open_capture

    tcp = row["transport"] == "tcp"
    e_hi, e_lo = _halves(row["egress_ip"])
    o_hi, o_lo = _halves(row["origin_ip"])
    e_port, o_port = row["egress_port"], row["origin_port"]
    pick = _Picker(tcp)
    with open_capture(capture) as src:
        for batch in src:
            p = decode(batch, toa_kinds=toa_kinds)
            span = (p.ts_ns >= row["start"]) & (p.ts_ns <= row["end"]) & (p.l4_off >= 0)
            span &= p.proto == (6 if tcp else 17)
            out = (p.src_hi == e_hi) & (p.src_lo == e_lo) & (p.sport == e_port)
            out &= (p.dst_hi == o_hi) & (p.dst_lo == o_lo) & (p.dport == o_port)
            back = (p.src_hi == o_hi) & (p.src_lo == o_lo) & (p.sport == o_port)
            back &= (p.dst_hi == e_hi) & (p.dst_lo == e_lo) & (p.dport == e_port)
            for i in np.flatnonzero(span & (out | back)).tolist():
                pick.offer(int(p.frame[i]), bool(out[i]), int(p.tcp_flags[i]), int(p.pay_len[i]))
                if pick.done:
                    return pick.result()
    return pick.result()
