"""Where each TOA variant's fields sit, read off pcapip's own dissector.

The Wireshark plugin must show the same fields, at the same bytes, under the
same filter names as ``pcapip show``. Rather than keep a second copy of every
variant's layout, each variant of the registry is decoded once by
:func:`pcapip.dissect.dissect_tcp_options` from a synthetic option whose body
bytes are all distinct, and the resulting field tree is the layout: names,
offsets, sizes and value types. A new variant or a renamed field in the
dissector therefore changes the plugin with no edit here.

Wireshark cannot give one filter name two types: a field registered both as
IPv4 and IPv6 makes ``toa.addr == 203.0.113.1`` fail to compile and
``toa.addr == 2001:db8::1`` match IPv4 options. So an IPv6 address whose
pcapip name does not already end in ``6`` gets the suffix ``6`` in Wireshark
(``toa.addr6``, ``toa.vip6``); :func:`wireshark_field_name` is that rule.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pcapip.dissect import Field, ToaOption, ToaRegistry, ToaVariant, dissect_tcp_options

# Structural fields every TOA subtree has (the dissector's names).
KIND, LEN, VARIANT, DATA = "toa.kind", "toa.len", "toa.variant", "toa.data"

# A variant that only makes sense after another kind in the same segment: the VIP option 250
# follows the 254 client option (pcapip raises toa.vip_without_client otherwise).
NEEDS_KIND_BEFORE: dict[str, int] = {"alibaba-vip": 254}


@dataclass(frozen=True)
class WsField:
    """One Wireshark field declaration (a Lua ``ProtoField``)."""

    abbrev: str  # display-filter name
    label: str
    ftype: str  # "uint8" "uint16" "uint24" "uint32" "ipv4" "ipv6" "bytes" "string"
    display: str = ""  # "dec" | "dec_hex" for integers


@dataclass(frozen=True)
class Placement:
    """A field of one variant: its Wireshark name and bytes, relative to the kind byte."""

    abbrev: str
    offset: int
    length: int


@dataclass(frozen=True)
class VariantLayout:
    variant: ToaVariant
    placements: tuple[Placement, ...]  # body fields in the dissector's tree order
    client_addr: Placement | None
    client_port: Placement | None
    vip_addr: Placement | None
    vip_port: Placement | None
    version: Placement | None  # kind 28: the byte saying IPv4 (1) or IPv6 (anything else)


def wireshark_field_name(name: str, value: object) -> str:
    """Wireshark filter name for a pcapip field: IPv6 addresses get their own name."""
    if isinstance(value, ipaddress.IPv6Address) and not name.endswith("6"):
        return name + "6"
    return name


def _probe_body(length: int) -> bytes:
    # 17 is odd, so 17*(i+1) mod 256 never repeats within 256 bytes: every field value is distinct,
    # which lets a field be recognised as the client address or port by its value alone.
    return bytes((0x11 * (i + 1)) & 0xFF for i in range(length - 2))


def _probe(kind: int, length: int, registry: ToaRegistry) -> ToaOption:
    res = dissect_tcp_options(bytes([kind, length]) + _probe_body(length), registry=registry)
    if not res.options or res.options[0].tree is None:
        raise RuntimeError(f"pcapip's dissector shows no TOA for kind {kind} length {length}")
    return res.options[0]


def _tree(opt: ToaOption) -> Field:
    assert opt.tree is not None
    return opt.tree


def _ftype(f: Field) -> tuple[str, str]:
    v = f.value
    if isinstance(v, ipaddress.IPv4Address):
        return "ipv4", ""
    if isinstance(v, ipaddress.IPv6Address):
        return "ipv6", ""
    if isinstance(v, bool) or v is None:
        raise RuntimeError(f"field {f.name} has no value type a Wireshark field can hold")
    if isinstance(v, int):
        return f"uint{8 * f.length}", "dec_hex" if "(0x" in f.label else "dec"
    if isinstance(v, bytes):
        return "bytes", ""
    if isinstance(v, str):
        return "string", ""
    raise RuntimeError(f"field {f.name} has a value of type {type(v).__name__}")


def _label(f: Field) -> str:
    return f.label.split(":", 1)[0].strip() or f.name


def _unmapped(value: object) -> str:
    return str(value)  # as carried: pcapip's text of a mapped address is ::ffff:a.b.c.d too


def variant_layouts(registry: ToaRegistry) -> list[VariantLayout]:
    """Every variant of ``registry`` with its fields, in (kind, length) order."""
    out = []
    for v in sorted(registry.variants, key=lambda v: (v.kind, v.length)):
        probe = _probe(v.kind, v.length, registry)
        tree = _tree(probe)
        roles: dict[str, Placement] = {}
        placements = []
        for f in tree.children:
            if f.name in (KIND, LEN, VARIANT):
                continue
            p = Placement(wireshark_field_name(f.name, f.value), f.offset, f.length)
            placements.append(p)
            if isinstance(f.value, ipaddress.IPv4Address | ipaddress.IPv6Address):
                if probe.client_ip is not None and _unmapped(f.value) == probe.client_ip:
                    roles.setdefault("client_addr", p)
                elif probe.vip_ip is not None and _unmapped(f.value) == probe.vip_ip:
                    roles.setdefault("vip_addr", p)
            elif isinstance(f.value, int) and f.length == 2:
                if f.value == probe.client_port:
                    roles.setdefault("client_port", p)
                elif f.value == probe.vip_port:
                    roles.setdefault("vip_port", p)
            elif isinstance(f.value, int) and f.length == 1 and f.name.endswith(".version"):
                roles.setdefault("version", p)
        out.append(
            VariantLayout(
                v,
                tuple(placements),
                roles.get("client_addr"),
                roles.get("client_port"),
                roles.get("vip_addr"),
                roles.get("vip_port"),
                roles.get("version"),
            )
        )
    return out


def _unknown_length_tree(registry: ToaRegistry) -> Field | None:
    """The subtree pcapip draws for a TOA kind with a length no variant has (for toa.data)."""
    for kind in sorted(registry.kinds):
        if kind in (253, 254):
            continue
        known = set(registry.lengths(kind))
        for length in range(3, 41):
            if length not in known:
                return _tree(_probe(kind, length, registry))
    return None


def plugin_fields(registry: ToaRegistry) -> list[WsField]:
    """Every field the plugin declares, in the order the dissector first shows them."""
    seen: dict[str, WsField] = {}
    trees = []
    for v in sorted(registry.variants, key=lambda v: (v.kind, v.length)):
        trees.append(_tree(_probe(v.kind, v.length, registry)))
    extra = _unknown_length_tree(registry)
    if extra is not None:
        trees.append(extra)
    for tree in trees:
        for f in tree.children:
            name = wireshark_field_name(f.name, f.value)
            ftype, display = _ftype(f)
            old = seen.get(name)
            if old is None:
                seen[name] = WsField(name, _label(f), ftype, display)
                continue
            if old.ftype != ftype and not (old.ftype + ftype).count("uint") == 2:
                raise RuntimeError(f"field {name} is both {old.ftype} and {ftype}")
            # one integer field for every width it is used with (toa.vpc_id: 24 and 32 bits)
            ftype = max(old.ftype, ftype, key=lambda t: int(t[4:]) if t.startswith("uint") else 0)
            label = min(
                old.label, _label(f), key=len
            )  # "VIP address", not "Destination (VIP) address"
            seen[name] = WsField(name, label, ftype, old.display)
    for required in (KIND, LEN, VARIANT):
        if required not in seen:
            raise RuntimeError(f"pcapip's TOA tree has no {required} field")
    if DATA not in seen:
        seen[DATA] = WsField(DATA, "Data", "bytes")
    return list(seen.values())
