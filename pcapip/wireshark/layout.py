"""Where each TOA variant's fields sit, read off pcapip's own dissector.

The Wireshark plugin must show the same fields, at the same bytes, under the
same filter names as ``pcapip show``. Rather than keep a second copy of every
variant's layout, each variant of the registry is decoded once by
:func:`pcapip.dissect.dissect_tcp_options` from a synthetic option whose body
bytes are all distinct, and the resulting field tree is the layout: names,
offsets and sizes. A new variant changes the plugin with no edit here. The
fields' labels and types are their registrations (``pcapip.dissect.hf``, the
plugin's ``hf[]``), which the dissector labels its tree from too; a field the
tree draws but the table lacks stops the plugin's generation.

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
from pcapip.dissect.hf import HF, TOA_FIELDS, FieldReg, holds

# Structural fields every TOA subtree has (the dissector's names).
KIND, LEN, VARIANT, DATA = "toa.kind", "toa.len", "toa.variant", "toa.data"

# A variant that only makes sense after another kind in the same segment: the VIP option 250
# follows the 254 client option (pcapip raises toa.vip_without_client otherwise).
NEEDS_KIND_BEFORE: dict[str, int] = {"alibaba-vip": 254}


#: One Wireshark field declaration (a Lua ``ProtoField``): the dissector's registration.
WsField = FieldReg


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
    """The TOA field registrations (``pcapip.dissect.hf``) the plugin declares, checked
    against the trees pcapip's dissector draws for every variant of ``registry``: each
    field a tree shows must be registered with a type that holds its value."""
    trees = [_tree(_probe(v.kind, v.length, registry))
             for v in sorted(registry.variants, key=lambda v: (v.kind, v.length))]
    extra = _unknown_length_tree(registry)
    if extra is not None:
        trees.append(extra)
    for tree in trees:
        for f in tree.children:
            reg = HF.get(f.name)
            if reg is None:
                raise RuntimeError(f"field {f.name} is not registered in pcapip.dissect.hf")
            if not holds(reg, f.value):
                raise RuntimeError(f"field {f.name} is registered as {reg.ftype}, "
                                   f"drawn with {f.value!r}")
    for required in (KIND, LEN, VARIANT, DATA):
        if required not in HF:
            raise RuntimeError(f"pcapip.dissect.hf has no {required} field")
    return list(TOA_FIELDS)
