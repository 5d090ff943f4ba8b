"""The packets that show what an origin received on a flow without a client header.

``pcapip show --flow`` prints the packets that carried a TOA option or a PROXY
header; a flow with neither (``client.missing``, ``none``, a malformed UDP
header...) is exactly the one an operator must look at, so it gets the
handshake and the first data segment in each direction instead.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_SYN, _ACK = 0x02, 0x10
_PROTO = {"tcp": 6, "udp": 17}
_KEY = ["proto", "src", "sport", "dst", "dport", "tenant"]


def flow_keys(flows: pd.DataFrame) -> pd.DataFrame:
    """Per flow row (``Analysis.flows`` columns): its key in both directions, whether that
    direction is from the egress, and the flow's first and last packet time."""
    import pandas as pd

    from pcapip.decode.tunnels import tenant

    f = pd.DataFrame({
        "flow": flows["flow"].astype("int64"),
        "proto": flows["transport"].astype(str).map(_PROTO).astype("int64"),
        "a": flows["egress_ip"].astype(str), "ap": flows["egress_port"].astype("int64"),
        "b": flows["origin_ip"].astype(str), "bp": flows["origin_port"].astype("int64"),
        "start": flows["start"].astype("int64"), "end": flows["end"].astype("int64"),
        "tenant": flows["tunnel"].astype(object).fillna("").astype(str).map(tenant),
    })
    fwd = f.rename(columns={"a": "src", "ap": "sport", "b": "dst", "bp": "dport"})
    rev = f.rename(columns={"b": "src", "bp": "sport", "a": "dst", "ap": "dport"})
    fwd["from_egress"], rev["from_egress"] = True, False
    return pd.concat([fwd, rev], ignore_index=True)[[*_KEY, "flow", "start", "end", "from_egress"]]


def flow_packets(
    capture: str,
    flows: pd.DataFrame,
    toa_kinds: Collection[int] = (),
    tunnel_ports: Mapping[int, int] | None = None,
) -> Iterator[tuple[Any, Any, pd.DataFrame]]:
    """The packets of the given flows, a batch at a time: (FrameBatch, its decoded Packets,
    a frame of ``i`` (index in the batch), ``flow`` and ``from_egress`` per packet, in
    packet order). A packet belongs to a flow when its transport, addresses and ports match
    in either direction within the flow's time span (so a later connection reusing the
    ports is kept apart) in the flow's tenant's tunnel, and its transport header decoded
    whole (the packets the flow stage counts). Damage ends the walk quietly: analyze reports it."""
    import numpy as np
    import pandas as pd

    from pcapip.decode import decode, in_flows, ips_to_str
    from pcapip.decode.tunnels import tenants
    from pcapip.errors import CaptureError
    from pcapip.sources import open_capture

    want = flow_keys(flows)
    if want.empty:
        return
    with open_capture(capture) as src:
        try:
            for batch in src:
                p = decode(batch, toa_kinds=toa_kinds, tunnel_ports=tunnel_ports)
                idx = np.flatnonzero(in_flows(p))
                if len(idx) == 0:
                    continue
                pk = pd.DataFrame({
                    "i": idx, "proto": p.proto[idx].astype("int64"),
                    "src": ips_to_str(p.src_hi[idx], p.src_lo[idx]),
                    "sport": p.sport[idx].astype("int64"),
                    "dst": ips_to_str(p.dst_hi[idx], p.dst_lo[idx]),
                    "dport": p.dport[idx].astype("int64"), "ts": p.ts_ns[idx],
                    "tenant": tenants(p.tun_kind[idx].tolist(), p.tun_id[idx].tolist()),
                })
                m = pk.merge(want, on=_KEY, how="inner")
                m = m[(m["ts"] >= m["start"]) & (m["ts"] <= m["end"])]
                m = m.drop_duplicates("i").sort_values("i")
                if len(m):
                    yield batch, p, m[["i", "flow", "from_egress"]].reset_index(drop=True)
        except CaptureError:
            pass


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
    capture: str,
    flow: pd.DataFrame,
    toa_kinds: Collection[int],
    tunnel_ports: Mapping[int, int] | None = None,
) -> tuple[list[tuple[int, str, bytes, int]], list[str]]:
    """(packet number, role, frame bytes, link type) of the flow's handshake and first data
    segments, in packet order, and the roles no packet had (the origin never answered,
    ...); ``flow`` is the flow's one row of ``Analysis.flows``. The bytes are kept as the
    walk meets them, so the capture is not read once more to print them."""
    pick = _Picker(flow["transport"].astype(str).iloc[0] == "tcp")
    frames: dict[int, tuple[bytes, int]] = {}
    for batch, p, m in flow_packets(capture, flow, toa_kinds, tunnel_ports):
        for i, from_egress in zip(m["i"].tolist(), m["from_egress"].tolist(), strict=True):
            n = int(p.frame[i])
            before = len(pick.found)
            pick.offer(n, from_egress, int(p.tcp_flags[i]), int(p.pay_len[i]))
            if len(pick.found) > before:
                frames[n] = (batch.frame_bytes(i), int(p.linktype[i]))
            if pick.done:
                break
        if pick.done:
            break
    found, missing = pick.result()
    return [(n, role, *frames[n]) for n, role in found], missing
