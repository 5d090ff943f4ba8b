"""The encapsulations pcapip opens, declared once.

Mirrors and overlays wrap the connection an operator asks about: cloud traffic
mirroring in VXLAN or GENEVE, switch mirrors in ERSPAN over GRE, carrier links
in MPLS and PPPoE, overlays in GRE and IP-in-IP. The decode loop opens them
(``decode/kernel.py``) and records, per packet, the innermost encapsulation and
its identity (VNI, GRE key, ERSPAN session, MPLS labels, PPPoE session): the same
inner addresses in two tenants are two connections, so the identity is part of
the flow key and shows in the ``tunnel`` column (:func:`tunnel_label`).

Identity packing (one uint64 per packet, ``tun_id``): VXLAN/GENEVE VNI; GRE key
with bit 32 set when a key is present; ERSPAN session ID; PPPoE session ID; MPLS
up to the first three labels of the stack, 20 bits each, with the label count
(capped at 7) in bits 60-62; 0 for IP-in-IP, which has no identity.

Nested encapsulations: the column names the innermost one that identifies a tenant
(VNI, key, session, labels), or, when none does, the innermost one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

TUN_NONE = 0
TUN_VXLAN = 1
TUN_GENEVE = 2
TUN_GRE = 3
TUN_ERSPAN2 = 4
TUN_ERSPAN3 = 5
TUN_MPLS = 6
TUN_PPPOE = 7
TUN_4IN4 = 8
TUN_6IN4 = 9
TUN_4IN6 = 10
TUN_6IN6 = 11

# UDP destination ports opened by default (IANA): VXLAN and GENEVE
VXLAN_PORT = 4789
GENEVE_PORT = 6081
# layers opened per frame at most: a crafted loop of encapsulations ends here
MAX_TUNNEL_DEPTH = 4
GRE_KEY_PRESENT = 1 << 32
MPLS_LABELS_KEPT = 3
# a label stack longer than this is refused as a crafted loop
MAX_MPLS_LABELS = 16


@dataclass(frozen=True, slots=True)
class Encapsulation:
    """One kind of encapsulation: its code in the ``tun_kind`` column, the name the
    ``tunnel`` column and the stats use, and a line for the README."""

    code: int
    name: str
    doc: str


ENCAPSULATIONS: tuple[Encapsulation, ...] = (
    Encapsulation(TUN_VXLAN, "vxlan", "VXLAN (UDP 4789, more with --vxlan-port): VNI"),
    Encapsulation(TUN_GENEVE, "geneve", "GENEVE (UDP 6081), inner Ethernet or IP, options skipped: VNI"),
    Encapsulation(TUN_GRE, "gre", "GRE with or without checksum, key, sequence; inner IP or Ethernet: key"),
    Encapsulation(TUN_ERSPAN2, "erspan2", "ERSPAN type II (GRE 0x88BE): session ID"),
    Encapsulation(TUN_ERSPAN3, "erspan3", "ERSPAN type III (GRE 0x22EB), platform sub-header: session ID"),
    Encapsulation(TUN_MPLS, "mpls", "MPLS label stack (0x8847), PW control word: labels"),
    Encapsulation(TUN_PPPOE, "pppoe", "PPPoE session (0x8864), PPP IPv4/IPv6: session ID"),
    Encapsulation(TUN_4IN4, "ipip", "IPv4 in IPv4 (IP protocol 4)"),
    Encapsulation(TUN_6IN4, "6in4", "IPv6 in IPv4 (IP protocol 41)"),
    Encapsulation(TUN_4IN6, "4in6", "IPv4 in IPv6 (next header 4)"),
    Encapsulation(TUN_6IN6, "6in6", "IPv6 in IPv6 (next header 41)"),
)
ENCAP_NAMES: dict[int, str] = {e.code: e.name for e in ENCAPSULATIONS}


def tunnel_label(kind: int, ident: int) -> str:
    """The ``tunnel`` column's text for one encapsulation, e.g. ``vxlan:5001``,
    ``gre:key=42``, ``mpls:1001/2002``, ``pppoe:0x11``; empty for none."""
    if kind == TUN_NONE:
        return ""
    name = ENCAP_NAMES.get(kind, f"tunnel{kind}")
    if kind in (TUN_VXLAN, TUN_GENEVE):
        return f"{name}:{ident}"
    if kind == TUN_GRE:
        return f"gre:key={ident & 0xFFFFFFFF}" if ident & GRE_KEY_PRESENT else "gre"
    if kind in (TUN_ERSPAN2, TUN_ERSPAN3):
        return f"{name}:session={ident}"
    if kind == TUN_PPPOE:
        return f"pppoe:0x{ident:x}"
    if kind == TUN_MPLS:
        count = ident >> 60
        labels = [(ident >> (40 - 20 * k)) & 0xFFFFF for k in range(min(count, MPLS_LABELS_KEPT))]
        more = "/+" if count > MPLS_LABELS_KEPT else ""
        return "mpls:" + "/".join(str(x) for x in labels) + more
    return name


#: Wireshark's display-filter field of each identity (tshark's names)
_WIRESHARK_FIELDS = {
    "vxlan": "vxlan.vni", "geneve": "geneve.vni", "gre": "gre.key", "erspan2": "erspan.spanid",
    "erspan3": "erspan.spanid", "pppoe": "pppoe.session_id",
}  # fmt: skip


def tunnel_display_filter(text: str) -> str:
    """The Wireshark display filter of a ``tunnel`` text, e.g. ``vxlan.vni==5001``; MPLS
    and IP-in-IP give the protocol alone (labels differ per direction; no identity)."""
    if not text:
        return ""
    name, _, ident = text.partition(":")
    field = _WIRESHARK_FIELDS.get(name)
    if field is None or not ident or name == "mpls":
        return {"ipip": "ip.proto==4", "6in4": "ip.proto==41", "4in6": "ipv6.nxt==4",
                "6in6": "ipv6.nxt==41"}.get(name, name)  # fmt: skip
    value = ident.rpartition("=")[2]
    return f"{field}=={value}"


def encapsulations_table() -> str:
    """The README's table of encapsulations opened (``tests/test_readme.py`` holds it)."""
    lines = ["| `tunnel` | encapsulation: what names the tenant |", "|---|---|"]
    lines += [f"| `{e.name}` | {e.doc} |" for e in ENCAPSULATIONS]
    return "\n".join(lines) + "\n"


def tenant(text: str) -> str:
    """The part of a ``tunnel`` text that names the tenant, as flow keys hold it: all of it,
    except MPLS labels (chosen by each router per direction: ``pcapip.flows.tunnels``)."""
    return "mpls" if text.startswith("mpls") else text


def tenants(kinds: Sequence[int], idents: Sequence[int]) -> list[str]:
    """:func:`tenant` of each packet's tunnel (the ``tun_kind`` and ``tun_id`` columns),
    each distinct tunnel spelled once: empty texts at once when no packet has one."""
    if not any(kinds):
        return [""] * len(kinds)
    spelled: dict[tuple[int, int], str] = {}
    out = []
    for pair in zip(kinds, idents, strict=True):
        text = spelled.get(pair)
        if text is None:
            text = spelled[pair] = tenant(tunnel_label(*pair))
        out.append(text)
    return out


def udp_tunnel_ports(vxlan_ports: tuple[int, ...] = ()) -> dict[int, int]:
    """UDP destination port -> encapsulation opened there: the defaults plus
    ``vxlan_ports`` (VXLAN on other ports, e.g. Linux's 8472)."""
    ports = {VXLAN_PORT: TUN_VXLAN, GENEVE_PORT: TUN_GENEVE}
    for p in vxlan_ports:
        ports[int(p)] = TUN_VXLAN
    return ports
