"""One option of a TOA kind, decoded: its variant's body, its label, what its address says.

The walk (:mod:`pcapip.dissect.tcp_options`) decides which options a receiver would
reach; this decodes each option whose kind and length a TOA variant claims
(``ToaRegistry``), wherever it sits, so an unreachable TOA is still reported with its
values. ``decode_body`` is the place a new variant layout is taught to read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pcapip.dissect.addr import ip_value, ipv4_text, ipv6_text, is_v4_mapped
from pcapip.dissect.codes import expert
from pcapip.dissect.fields import Expert, Field
from pcapip.dissect.hf import HF, item, subtree
from pcapip.dissect.tcp_option_tree import exid_of
from pcapip.dissect.toa_registry import (
    EXPERIMENTAL_KINDS,
    L_PORT_V4,
    L_PORT_V6,
    L_V4_DST,
    L_VER_V4,
    L_VER_V6,
    L_VIP_V4,
    L_VPC_V4,
    L_VPC_V6,
    ToaRegistry,
    ToaVariant,
)


@dataclass(slots=True)
class ToaOption:
    """One option whose kind is a TOA kind, decoded by its (kind, length) variant."""

    kind: int
    length: int
    offset: int  # absolute offset of the kind byte
    variant: ToaVariant | None  # None: a TOA kind with a length no variant has
    client_ip: str | None = None
    client_port: int | None = None
    vip_ip: str | None = None
    vip_port: int | None = None
    vpc_id: int | None = None
    reached: bool = True  # a kernel-style walk reaches it
    experts: list[Expert] = field(default_factory=list)
    tree: Field | None = None

def _ip_text(b: bytes) -> str:
    return ipv4_text(b) if len(b) == 4 else ipv6_text(b)


def _hf(name: str, value: int | str | bytes, offset: int, length: int | None = None,
        shown: str = "", *, generated: bool = False) -> Field:
    """A registered field's item ``Label: value`` (bytes as hex, spanning their own length
    unless told)."""
    text = shown or (value.hex() if isinstance(value, bytes) else str(value))
    size = len(value) if length is None and isinstance(value, bytes) else length or 0
    return item(name, text, offset, size, value, generated=generated)


class _Body:
    """Decodes one variant's body into ToaOption fields and tree children (none when
    ``node`` is None: the no-tree walk)."""

    def __init__(self, opt: ToaOption, node: Field | None, body: bytes, at: int) -> None:
        self.opt, self.node, self.body, self.at = opt, node, body, at  # at: abs offset of body

    def port(self, rel: int, name: str, alt: str = "") -> int:
        v = struct.unpack_from("!H", self.body, rel)[0]
        if self.node is not None:
            self.node.add(item(name, v, self.at + rel, 2, v, alt=alt))
        return v

    def addr(self, rel: int, size: int, name: str, alt: str = "") -> str:
        # IPv6 forms get their own field (toa.addr6, toa.vip6), as in Wireshark (ip.addr vs
        # ipv6.addr), so a display filter compares like with like.
        if size == 16:
            name += "6"
        raw = self.body[rel : rel + size]
        text = _ip_text(raw)
        if self.node is not None:
            shown = text if not is_v4_mapped(raw) else \
                f"{text} (IPv4-mapped: {ipv4_text(raw[12:])})"
            self.node.add(item(name, shown, self.at + rel, size, ip_value(raw), alt=alt))
        return text

    def raw(self, rel: int, size: int, name: str) -> None:
        if self.node is not None:
            self.node.add(_hf(name, self.body[rel : rel + size], self.at + rel, size))

    def num(self, rel: int, size: int, name: str, alt: str = "") -> int:
        v = int.from_bytes(self.body[rel : rel + size], "big")
        if self.node is not None:
            self.node.add(item(name, f"{v} (0x{v:0{size * 2}x})", self.at + rel, size, v,
                               alt=alt))
        return v


def decode_body(opt: ToaOption, node: Field | None, body: bytes, at: int) -> None:
    """Fill ``opt`` (client, VIP, VPC id) and ``node`` (unless None) from a body whose length
    matches its variant."""
    v = opt.variant
    assert v is not None
    b = _Body(opt, node, body, at)
    lay = v.layout
    if lay in (L_PORT_V4, L_PORT_V6):
        opt.client_port = b.port(0, "toa.port")
        opt.client_ip = b.addr(2, 4 if lay == L_PORT_V4 else 16, "toa.addr")
    elif lay == L_V4_DST:
        opt.client_port = b.port(0, "toa.port")
        opt.client_ip = b.addr(2, 4, "toa.addr")
        b.raw(6, 2, "toa.pad")
        opt.vip_port = b.port(8, "toa.vip_port", alt="Destination (VIP) port")
        opt.vip_ip = b.addr(10, 4, "toa.vip", alt="Destination (VIP) address")
    elif lay == L_VIP_V4:
        opt.vip_port = b.port(0, "toa.vip_port")
        opt.vip_ip = b.addr(2, 4, "toa.vip")
    elif lay == L_VPC_V4:
        opt.client_port = b.port(0, "toa.port")
        opt.client_ip = b.addr(2, 4, "toa.addr")
        opt.vpc_id = b.num(6, 4, "toa.vpc_id")
        opt.vip_ip = b.addr(10, 4, "toa.vip")
        opt.vip_port = b.port(14, "toa.vip_port")
        b.raw(16, 2, "toa.pad")
    elif lay == L_VPC_V6:
        opt.client_port = b.port(0, "toa.port")
        opt.client_ip = b.addr(2, 16, "toa.addr")
        opt.vpc_id = b.num(18, 3, "toa.vpc_id", alt="VPC id (24 bits)")
        opt.vip_ip = b.addr(21, 16, "toa.vip")
        b.raw(37, 1, "toa.pad")
    elif lay in (L_VER_V4, L_VER_V6):
        ver = body[0]
        if node is not None:
            node.add(_hf("toa.version", ver, at, 1))
        opt.client_ip = b.addr(1, 4 if lay == L_VER_V4 else 16, "toa.addr")
        if (ver == 1) != (lay == L_VER_V4):
            opt.experts.append(
                expert(
                    "toa.bad_version", at, 1,
                    f"kind 28 length {opt.length} carries an IPv{4 if lay == L_VER_V4 else 6} "
                    f"address but its version byte is {ver} (1 means IPv4, anything else IPv6)",
                )
            )
    else:  # pragma: no cover - every registry layout is handled above
        b.raw(0, len(body), "toa.data")


def _toa_label(opt: ToaOption) -> str:
    toa = HF["toa"].label
    if opt.variant is None:
        return f"{toa}? (kind {opt.kind}, length {opt.length}): unknown layout"
    who = ""
    if opt.client_ip is not None:
        who = opt.client_ip if opt.client_port is None else hostport(opt.client_ip, opt.client_port)
        who = f": client {who}"
    elif opt.vip_ip is not None:
        who = f": VIP {hostport(opt.vip_ip, opt.vip_port)}"
    return f"{toa} {opt.variant.name} (kind {opt.kind}){who}"


def hostport(ip: str, port: int | None) -> str:
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"

def classify_toa(
    data: bytes, i: int, kind: int, length: int, base: int, registry: ToaRegistry,
    ip_version: int | None, draw: bool = True,
) -> ToaOption | None:
    """Decode a complete option of a TOA kind; None when it is a known non-TOA use of the kind.
    ``draw=False``: no subtree (``opt.tree`` stays None), the same values and experts."""
    if not registry.claims(kind, length):
        return None  # an RFC 6994 experiment or User Timeout, not an address
    body = data[i + 2 : i + length]
    variant = registry.lookup(kind, length)
    exid, exp_name = (None, None)
    if kind in EXPERIMENTAL_KINDS:
        exid, exp_name = exid_of(body)
    opt = ToaOption(kind, length, base + i, variant)
    node = None
    if draw:
        node = subtree("toa", base + i, length)
        node.experts = opt.experts  # one list: the tree shows exactly the option's experts
        opt.tree = node
        node.add(_hf("toa.kind", kind, base + i, 1))
        node.add(_hf("toa.len", length, base + i + 1, 1))
    if variant is None:
        known = registry.lengths(kind)
        if kind in EXPERIMENTAL_KINDS:
            opt.experts.append(
                expert("toa.unknown_layout", base + i, length,
                       f"kind {kind} length {length} matches no known TOA layout "
                       f"(known lengths: {', '.join(map(str, known))}) and is too short for "
                       "an RFC 6994 experiment id: layout unknown")
            )
        else:
            opt.experts.append(
                expert("toa.unknown_length", base + i, length,
                       f"TOA kind {kind} with length {length}: no known variant has it "
                       f"(known lengths: {', '.join(map(str, known))})")
            )
        if node is not None:
            if body:
                node.add(_hf("toa.data", body, base + i + 2))
            node.label = _toa_label(opt)
        return opt
    if node is not None:
        node.add(_hf("toa.variant", variant.name, base + i, length,
                     f"{variant.name} ({variant.vendors})", generated=True))
    decode_body(opt, node, body, base + i + 2)
    if exid is not None:
        alt = ""
        if variant.layout in (L_PORT_V4, L_PORT_V6):
            alt = f" or a TOA whose client port is {exid & 0xFFFF}" if exid <= 0xFFFF else ""
        opt.experts.append(
            expert("toa.exp_ambiguous", base + i, length,
                   f"kind {kind} length {length} starts with experiment id 0x{exid:04x} "
                   f"({exp_name}): this is either that experiment{alt}; "
                   "a receiving TOA module would take it as the client")
        )
    _address_notes(opt, data, i, base, ip_version)
    if node is not None:
        node.label = _toa_label(opt)
    return opt


_VER_LAYOUTS = frozenset((L_VER_V4, L_VER_V6))  # a version byte before the address
_V6_LAYOUTS = frozenset((L_PORT_V6, L_VPC_V6, L_VER_V6))  # an IPv6 client address


def _address_notes(opt: ToaOption, data: bytes, i: int, base: int, ip_version: int | None) -> None:
    v = opt.variant
    assert v is not None
    if opt.client_ip is None:
        return
    # where the client address bytes sit, to point the experts at them
    rel = 3 if v.layout in _VER_LAYOUTS else 4
    size = 16 if v.layout in _V6_LAYOUTS else 4
    raw = data[i + rel : i + rel + size]
    family = 6 if size == 16 else 4
    if is_v4_mapped(raw):
        family = 4
        opt.experts.append(
            expert("toa.v4_mapped", base + i + rel, size,
                   f"IPv4-mapped IPv6 address {opt.client_ip}: an IPv4 client "
                   f"({ipv4_text(raw[12:])})")
        )
    if ip_version in (4, 6) and family != ip_version:
        extra = (" (NAT64-style: an IPv4 origin must accept sockaddr_in6 to read it)"
                 if family == 6 else "")
        opt.experts.append(
            expert("toa.cross_family", base + i + rel, size,
                   f"IPv{family} client in a TOA on an IPv{ip_version} packet{extra}")
        )
    if raw.count(0) == len(raw) or opt.client_port == 0:
        has_port = opt.client_port is not None
        start = base + i + rel - (2 if has_port else 0)
        opt.experts.append(
            expert("toa.zero_client", start, size + (2 if has_port else 0),
                   f"TOA client is {hostport(opt.client_ip, opt.client_port)}")
        )

