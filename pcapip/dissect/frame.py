"""One frame as Wireshark-style layers, for ``pcapip show`` and the TUI detail pane.

Works from the raw frame bytes and the link type alone (no decoder columns),
so a single packet can be shown from anywhere. Every field carries its
absolute offset in the frame, which is what lets a hex view mark the bytes of
the field under the cursor. Damaged or cut frames are dissected as far as the
bytes go; the point where they stop is an expert, never an exception.

The layers live by job: ``frame_link`` (Ethernet, VLAN, SLL, loopback), ``frame_ip``
(IPv4, IPv6), ``frame_transport`` (TCP, UDP, PROXY), ``tunnel_layers`` (encapsulations).
"""

from __future__ import annotations

from pcapip.decode.tunnels import udp_tunnel_ports
from pcapip.dissect.codes import expert
from pcapip.dissect.fields import Field
from pcapip.dissect.frame_ip import IpLayers
from pcapip.dissect.frame_link import ETH_IPV4, ETH_IPV6, LinkLayers
from pcapip.dissect.frame_transport import TransportLayers
from pcapip.dissect.hf import item
from pcapip.dissect.toa_registry import DEFAULT_REGISTRY, ToaRegistry
from pcapip.sources.linktypes import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    LINKTYPE_RAW_DLT12,
    LINKTYPE_RAW_DLT14,
    LT_RECORD,
)


class _Dissector(LinkLayers, IpLayers, TransportLayers):
    """One frame's layers, dissected outward-in; the layers' methods come from the mixins."""

    def __init__(self, frame: bytes, registry: ToaRegistry, proxy_offset: int | None,
                 udp_ports: dict[int, int]) -> None:
        self.b = frame
        self.n = len(frame)
        self.registry = registry
        self.proxy_offset = proxy_offset
        self.udp_ports = udp_ports  # UDP destination port -> encapsulation (VXLAN, GENEVE)
        self.layers: list[Field] = []
        self.is_ethernet = False
        self.depth = 0  # encapsulations opened (tunnel_layers.enter)

    def cut(self, node: Field, off: int, need: int, what: str) -> bool:
        """True (and an expert on ``node``) when fewer than ``need`` bytes remain at ``off``."""
        if off + need <= self.n:
            return False
        have = max(0, self.n - off)
        node.experts.append(expert("frame.truncated", min(off, self.n), have,
                                   f"{what} needs {need} bytes at offset {off}, "
                                   f"only {have} captured"))
        return True

    # --- link layers ------------------------------------------------------------------------

    def run(self, linktype: int) -> list[Field]:
        b, n = self.b, self.n
        frame = item("frame", f"{n} bytes captured ({n * 8} bits)", 0, n, n)
        frame.add(item("frame.cap_len", f"{n} bytes", 0, 0, n, generated=True))
        frame.add(item("frame.linktype", linktype, 0, 0, linktype, generated=True))
        self.layers.append(frame)
        if linktype == LINKTYPE_ETHERNET:
            self.ethernet()
        elif linktype == LINKTYPE_LINUX_SLL:
            self.sll()
        elif linktype == LINKTYPE_LINUX_SLL2:
            self.sll2()
        elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            self.null(linktype)
        elif linktype in (LINKTYPE_RAW, LINKTYPE_RAW_DLT12, LINKTYPE_RAW_DLT14):
            if n:
                self.ip(0, {4: ETH_IPV4, 6: ETH_IPV6}.get(b[0] >> 4, 0), raw=True)
        elif linktype == LINKTYPE_IPV4:
            self.ip(0, ETH_IPV4)
        elif linktype == LINKTYPE_IPV6:
            self.ip(0, ETH_IPV6)
        else:
            what = ("a pcapng record that holds no packet (a custom block or a journal entry)"
                    if linktype == LT_RECORD else f"link type {linktype}")
            frame.experts.append(expert("frame.unknown_link", 0, n, f"{what} is not dissected"))
        return self.layers


def dissect_frame(frame: bytes, linktype: int, *, registry: ToaRegistry = DEFAULT_REGISTRY,
                  proxy_offset: int | None = None,
                  udp_ports: dict[int, int] | None = None) -> list[Field]:
    """Wireshark-style layers of one frame, tunnels opened; never raises.

    ``proxy_offset``: where in the L4 payload a PROXY header starts (the flow
    stage knows it for a header that follows earlier stream bytes); without
    it, a header is looked for at the start of the payload. ``udp_ports``: UDP
    destination port -> encapsulation opened there (default
    :func:`pcapip.decode.tunnels.udp_tunnel_ports`: VXLAN 4789, GENEVE 6081).
    """
    frame = bytes(frame)
    ports = udp_tunnel_ports() if udp_ports is None else udp_ports
    d = _Dissector(frame, registry, proxy_offset, ports)
    try:
        return d.run(int(linktype))
    except Exception as exc:  # a dissector bug must not take `pcapip show` down
        layers = d.layers or [item("frame", f"{len(frame)} bytes", 0, len(frame))]
        layers[-1].experts.append(expert("dissect.internal_error", 0, len(frame),
                                         f"frame dissector failed: {type(exc).__name__}: {exc}"))
        return layers
