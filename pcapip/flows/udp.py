"""UDP flows: one UdpFlow object per 4-tuple, every datagram through the per-packet rules.

UDP carries no handshake or close, so a flow ends after ``udp_timeout`` without
datagrams (checked in arrival order: the flows idle longest come first).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from pcapip.decode.columns import Packets
from pcapip.flows.machine import Machine, PacketColumns
from pcapip.flows.state import UdpFlow
from pcapip.flows.tunnels import TunnelCodes
from pcapip.flows.watermark import NONE, ORDER_SHIFT


class UdpFlows:
    """The open UDP flows, in the order they started."""

    def __init__(self, machine: Machine, timeout_ns: int, tunnels: TunnelCodes) -> None:
        self.machine = machine
        self.tunnels = tunnels
        self.timeout_ns = timeout_ns
        self.flows: dict[tuple, UdpFlow] = {}
        self._order: deque[UdpFlow] = deque()
        self.ending: list[UdpFlow] = []  # ended, rows not made yet

    def open_count(self) -> int:
        return len(self.flows)

    def feed(
        self,
        p: Packets,
        rows: np.ndarray,
        tun: tuple[np.ndarray, np.ndarray],
        capture: int,
        next_serial: Callable[[], int],
        settled: list,
    ) -> None:
        """Apply datagrams ``rows`` of ``p`` (``tun``: tunnel keys and texts per packet of
        ``p``); flows settled by them are appended to ``settled``."""
        keys, sides = _keys(p, rows, tun[0], self.tunnels.label)
        texts = tun[1][rows].tolist()
        c = PacketColumns(p, rows)
        udp = self.machine.udp
        flows = self.flows
        timeout = self.timeout_ns
        for j in range(len(keys)):
            key = keys[j]
            side = sides[j]
            ts = c.ts[j]
            fl = flows.get(key)
            if fl is None or ts - fl.end_ns > timeout:
                if fl is not None:
                    self.end(fl)
                fl = UdpFlow(key, capture, c.frame[j], ts, ts, side, egress=side)
                fl.serial = next_serial()
                fl.tunnel = self.tunnels.label(texts[j])
                flows[key] = fl
                self._order.append(fl)
            was = fl.settled
            udp(fl, c, j, side)
            if fl.settled and not was:
                settled.append(fl)

    def end(self, fl: UdpFlow) -> None:
        if self.flows.get(fl.key) is fl:
            del self.flows[fl.key]
        self.ending.append(fl)

    def end_all(self) -> None:
        for fl in list(self.flows.values()):
            self.end(fl)

    def expire(self, now: int) -> None:
        """End the flows without a datagram for ``udp_timeout`` as of capture time ``now``."""
        u = self._order
        limit = now - self.timeout_ns
        while u:
            fl = u[0]
            if self.flows.get(fl.key) is not fl:
                u.popleft()
                continue
            if fl.end_ns >= limit:
                break
            u.popleft()
            self.end(fl)

    def oldest_start(self) -> int:
        """(capture, first frame) of the oldest open flow as one int64 (the table's order),
        or NONE when none is open."""
        u = self._order
        while u and self.flows.get(u[0].key) is not u[0]:
            u.popleft()
        return (u[0].capture << ORDER_SHIFT) + u[0].first_frame if u else NONE

    def oldest_open(self, limit: int) -> list[tuple[int, int, UdpFlow]]:
        """(start, 1, flow) of the ``limit`` oldest open flows."""
        out: list[tuple[int, int, UdpFlow]] = []
        for fl in self.flows.values():  # insertion order: oldest first
            if len(out) >= limit:
                break
            out.append((fl.start_ns, 1, fl))
        return out

    def still_open(self, fl: UdpFlow) -> bool:
        return self.flows.get(fl.key) is fl


def _keys(
    p: Packets, rows: np.ndarray, tun: np.ndarray, label: Callable[[int], str]
) -> tuple[list[tuple], list[int]]:
    """Flow keys as tuples (proto, a_hi, a_lo, a_port, b_hi, b_lo, b_port, tunnel text) and
    the sending side (0: the smaller (address, port) end, A)."""
    k = _canonical(p, rows)
    pr = p.proto[rows].tolist()
    tunnels = [label(t) for t in tun[rows].tolist()]
    keys = list(zip(pr, *(c.tolist() for c in k[:6]), tunnels, strict=True))
    return keys, k[6].tolist()


def _canonical(p: Packets, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """(a_hi, a_lo, a_port, b_hi, b_lo, b_port, side) for packets ``rows``."""
    src_hi, src_lo, dst_hi, dst_lo = p.src_hi[rows], p.src_lo[rows], p.dst_hi[rows], p.dst_lo[rows]
    sport = p.sport[rows].astype(np.int64)
    dport = p.dport[rows].astype(np.int64)
    src_first = (src_hi < dst_hi) | (
        (src_hi == dst_hi) & ((src_lo < dst_lo) | ((src_lo == dst_lo) & (sport <= dport)))
    )
    return (
        np.where(src_first, src_hi, dst_hi),
        np.where(src_first, src_lo, dst_lo),
        np.where(src_first, sport, dport),
        np.where(src_first, dst_hi, src_hi),
        np.where(src_first, dst_lo, src_lo),
        np.where(src_first, dport, sport),
        (~src_first).astype(np.int64),
    )
