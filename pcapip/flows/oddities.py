"""Frames the flow stage could not use, said out loud.

A capture on an unsupported link type, or one whose connections all travel in
a GRE tunnel, used to give "0 flows, no findings": the worst answer, because it
looks like a clean bill of health. Here every frame that gave no TCP/UDP
packet is counted per capture and per reason, with the first packet of each,
in memory bounded by the number of distinct reasons (not of frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pcapip.decode.columns import Packets
from pcapip.decode.status import (
    R_UDP_TUNNEL,
    reason_is_noise,
    reason_label,
    tunnel_reasons,
    undecoded_reasons,
)
from pcapip.errors import CaptureError, CaptureWarning
from pcapip.flows.findings import TOA_RECEIVERS


class Undecoded:
    """Per capture: packets fed, and (reason, value) -> [count, first packet number]."""

    def __init__(self) -> None:
        self.packets: dict[int, int] = {}
        self.decoded: dict[int, int] = {}
        self.reasons: dict[int, dict[tuple[int, int], list[int]]] = {}

    def add(self, p: Packets, capture: int, usable: np.ndarray, udp_rows: np.ndarray) -> None:
        """Count one batch: ``usable`` marks the frames that gave a TCP/UDP packet."""
        n = len(p)
        self.packets[capture] = self.packets.get(capture, 0) + n
        ok = int(np.count_nonzero(usable))
        self.decoded[capture] = self.decoded.get(capture, 0) + ok
        found = undecoded_reasons(p, np.flatnonzero(~usable)) if ok < n else []
        found += tunnel_reasons(p, udp_rows)
        if not found:
            return
        mine = self.reasons.setdefault(capture, {})
        for reason, value, count, first in found:
            seen = mine.get((reason, value))
            if seen is None:
                mine[(reason, value)] = [count, int(p.frame[first])]
            else:
                seen[0] += count

    def add_counts(self, other: Undecoded) -> None:
        """Add another tracker's counts (a recording read in parts: one per capture)."""
        for cap, n in other.packets.items():
            self.packets[cap] = self.packets.get(cap, 0) + n
        for cap, n in other.decoded.items():
            self.decoded[cap] = self.decoded.get(cap, 0) + n
        for cap, theirs in other.reasons.items():
            mine = self.reasons.setdefault(cap, {})
            for key, (count, first) in theirs.items():
                seen = mine.get(key)
                if seen is None:
                    mine[key] = [count, first]
                else:
                    seen[0] += count
                    seen[1] = min(seen[1], first)

    def totals(self) -> dict[str, int]:
        """Label -> frames that gave no TCP/UDP packet, over every capture, most frequent
        first (UDP tunnels are decoded packets: they are in :meth:`warnings` only)."""
        out: dict[str, int] = {}
        for mine in self.reasons.values():
            for (reason, value), (count, _) in mine.items():
                if reason != R_UDP_TUNNEL:
                    label = reason_label(reason, value)
                    out[label] = out.get(label, 0) + count
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def blind_packets(self) -> int:
        """Frames that gave no TCP/UDP packet for a reason that may hide flows."""
        return sum(
            c
            for mine in self.reasons.values()
            for (reason, value), (c, _) in mine.items()
            if reason != R_UDP_TUNNEL and not reason_is_noise(reason, value)
        )

    def undecodable(self, names: Sequence[str]) -> list[CaptureError]:
        """Captures with packets none of which could be decoded, at least one for a reason
        that may hide flows: pcapip cannot analyse them (an input error, exit status 2)."""
        out = []
        for cap, n in self.packets.items():
            if n and not self.decoded.get(cap) and self._blind(cap):
                first = min(f for _, f in self.reasons[cap].values())
                out.append(
                    CaptureError(
                        _name(names, cap),
                        f"none of its {n} packets could be decoded: {self._list(cap, None)}",
                        frame=first,
                    )
                )
        return out

    def warnings(self, names: Sequence[str]) -> list[CaptureWarning]:
        """One warning per capture whose frames hide flows or that has no TCP/UDP at all
        (captures given as :meth:`undecodable` errors excluded)."""
        out = []
        for cap, mine in sorted(self.reasons.items()):
            n = self.packets.get(cap, 0)
            if not self.decoded.get(cap):
                if self._blind(cap):
                    continue  # an error, not a warning
                first = min(f for _, f in mine.values())
                msg = f"none of its {n} packets is TCP/UDP: {self._list(cap, None)}"
                out.append(CaptureWarning(_name(names, cap), first, None, msg, kind="no_tcp_udp"))
                continue
            blind = {k: v for k, v in mine.items() if not reason_is_noise(*k)}
            if not blind:
                continue
            count = sum(c for c, _ in blind.values())
            first = min(f for _, f in blind.values())
            msg = f"{count} of {n} packets not analysed: {self._list(cap, blind)}"
            out.append(CaptureWarning(_name(names, cap), first, None, msg, kind="undecoded"))
        return out

    def _blind(self, cap: int) -> bool:
        return any(not reason_is_noise(*k) for k in self.reasons.get(cap, {}))

    def _list(self, cap: int, items: dict[tuple[int, int], list[int]] | None) -> str:
        items = self.reasons[cap] if items is None else items
        counts: dict[str, int] = {}  # (reasons of one label, e.g. 802.3 lengths, said once)
        for k, (c, _) in items.items():
            label = reason_label(*k)
            counts[label] = counts.get(label, 0) + c
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])
        if len(ranked) == 1:
            return ranked[0][0]
        return ", ".join(f"{label} {c}" for label, c in ranked)


def _name(names: Sequence[str], cap: int) -> str:
    return names[cap] if cap < len(names) else f"capture {cap + 1}"



@dataclass(frozen=True, slots=True)
class ToaKindSeen:
    """A TOA kind/length that carried client addresses in this capture: a fact about the
    proxy's configuration, said once (not a finding on every flow)."""

    kind: int
    length: int
    variant: str | None  # the registry's name for (kind, length), None if unknown
    flows: int

    @property
    def receivers(self) -> str:
        """Receiving module families built for this kind (the others ignore it)."""
        return TOA_RECEIVERS.get(self.kind, "no known receiving module (a kind added with --toa-kind)")

    def __str__(self) -> str:
        name = f", {self.variant}" if self.variant else ""
        return (
            f"{self.kind} ({self.length} bytes{name}; read by {self.receivers}) "
            f"on {self.flows} flow{'s' if self.flows != 1 else ''}"
        )


def toa_kinds_seen(codes: np.ndarray, registry: Any) -> list[ToaKindSeen]:
    """Per kind*256+length code (NULL: no TOA) the flows it carried, most used first."""
    from pcapip.flows.packed import NULL

    codes = codes[codes != NULL]
    if codes.size == 0:
        return []
    uniq, counts = np.unique(codes, return_counts=True)
    out = []
    for code, n in zip(uniq.tolist(), counts.tolist(), strict=True):
        kind, length = code >> 8, code & 255
        v = registry.lookup(kind, length) if registry is not None else None
        out.append(ToaKindSeen(kind, length, v.name if v is not None else None, n))
    return sorted(out, key=lambda t: (-t.flows, t.kind, t.length))


def announcers(egress: np.ndarray, carries: np.ndarray, vocab: Any) -> dict[str, int]:
    """Source (egress) addresses that announced a client (TOA or PROXY header), with their
    flows, most flows first: what ``--trusted`` should list if they are the proxies."""
    e = egress[carries]
    if e.size == 0:
        return {}
    uniq, counts = np.unique(e, return_counts=True)
    ips = map(str, vocab.ip_decode(uniq))
    # (-flows, address text) pairs sort as tuples, in C: a proxy fleet announces 10^4-10^5
    return {ip: -neg for neg, ip in sorted(zip((-counts).tolist(), ips, strict=True))}
