"""Field registrations, like Wireshark's ``hf[]``: filter name, label, type, declared once.

Every dissector builds its tree items from this table by filter name (:func:`item`,
:func:`subtree`), so a field has one label and one type everywhere: ``pcapip show``, the TUI's
detail pane (which draws those trees) and the Wireshark plugin, which declares its
``ProtoField`` s from :data:`TOA_FIELDS` (``pcapip.wireshark.layout``). A name missing
from the table is a ``KeyError`` where the item is built; a name registered twice stops
the import. The tables are split by protocol: :mod:`.hf_layers` (frame, link, IP, TCP,
UDP, TCP options), :mod:`.hf_proxy` (PROXY v1, v2, TLVs) and the TOA option's below.
``tests/test_dissect_hf.py`` holds the table to what the dissectors draw on every bundled
capture, and the names shared with Wireshark to the types ``tshark -G fields`` gives them.
Wireshark cannot give one filter name two types, so an IPv6 address has its own name
(``toa.addr6``, ``toa.vip6``), as ``ip.addr`` and ``ipv6.addr`` do.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pcapip.dissect.fields import Field, FieldReg
from pcapip.dissect.hf_layers import (
    IP_FIELDS,
    LINK_FIELDS,
    TCP_OPTION_FIELDS,
    TRANSPORT_FIELDS,
    TUNNEL_FIELDS,
)
from pcapip.dissect.hf_proxy import PROXY_FIELDS, TLV_FIELDS

__all__ = ["ALL_FIELDS", "HF", "TOA_FIELDS", "TOA_PROTO", "FieldReg", "bit_picture", "holds",
           "index", "item", "subtree", "vals"]

#: The TOA option's fields, in the order the plugin declares them.
TOA_FIELDS: tuple[FieldReg, ...] = (
    FieldReg("toa.kind", "Kind", "uint8", "dec"),
    FieldReg("toa.len", "Length", "uint8", "dec"),
    FieldReg("toa.variant", "Variant", "string"),  # generated: the registry's name for it
    FieldReg("toa.version", "Address version", "uint8", "dec"),
    FieldReg("toa.addr", "Client address", "ipv4"),
    FieldReg("toa.addr6", "Client address", "ipv6"),
    FieldReg("toa.port", "Client port", "uint16", "dec"),
    FieldReg("toa.vip", "VIP address", "ipv4", also=("Destination (VIP) address",)),
    FieldReg("toa.vip6", "VIP address", "ipv6"),
    FieldReg("toa.vip_port", "VIP port", "uint16", "dec", also=("Destination (VIP) port",)),
    FieldReg("toa.vpc_id", "VPC id", "uint32", "dec_hex", also=("VPC id (24 bits)",)),
    FieldReg("toa.pad", "Padding", "bytes"),
    FieldReg("toa.data", "Data", "bytes"),  # a body no variant's layout reads
)

#: The TOA option's own subtree (the plugin declares it as its ``Proto``).
TOA_PROTO = FieldReg("toa", "TCP Option - TOA", "protocol", also=("TCP Option - TOA?",))

ALL_FIELDS: tuple[FieldReg, ...] = (*LINK_FIELDS, *IP_FIELDS, *TUNNEL_FIELDS, *TRANSPORT_FIELDS,
                                    *TCP_OPTION_FIELDS, TOA_PROTO, *TOA_FIELDS,
                                    *PROXY_FIELDS, *TLV_FIELDS)


def index(fields: tuple[FieldReg, ...]) -> dict[str, FieldReg]:
    """Filter name -> registration; a name registered twice is an error (at import)."""
    out: dict[str, FieldReg] = {}
    for f in fields:
        if f.abbrev in out:
            raise RuntimeError(f"field {f.abbrev} is registered twice")
        out[f.abbrev] = f
    return out


#: filter name -> registration
HF: dict[str, FieldReg] = index(ALL_FIELDS)


def _label(reg: FieldReg, alt: str) -> str:
    if not alt:
        return reg.label
    if alt not in reg.also:
        raise KeyError(f"{reg.abbrev} has no wording {alt!r} registered")
    return alt


def bit_picture(mask: int, bits: int) -> str:
    """Wireshark's picture of a bitfield within its byte: ``0100 ....`` for 4 under 0xF0."""
    shift = (mask & -mask).bit_length() - 1
    v = bits << shift
    out = "".join(str((v >> b) & 1) if mask >> b & 1 else "." for b in range(7, -1, -1))
    return f"{out[:4]} {out[4:]}"


def item(name: str, shown: object, offset: int, length: int, value: Any = None, *,
         bits: int | None = None, generated: bool = False, alt: str = "") -> Field:
    """The tree item ``Label: shown`` of a registered field; ``bits`` (the field's raw bits)
    puts the bitfield picture of its registered mask first (``0100 .... = Version: 4``)."""
    reg = HF[name]
    text = f"{_label(reg, alt) if alt else reg.label}: {shown}"
    if bits is not None:
        text = f"{bit_picture(reg.mask, bits)} = {text}"
    return Field(name, text, offset, length, value, [], [], generated)


def subtree(name: str, offset: int, length: int, value: Any = None, *, more: str = "",
         alt: str = "", generated: bool = False) -> Field:
    """A subtree (or an item that words its own value) of a registered field: its label,
    then ``more`` (``Data`` + `` (12 bytes)``), as ``proto_item_append_text`` does."""
    label = _label(HF[name], alt) if alt else HF[name].label
    return Field(name, label + more, offset, length, value, [], [], generated)


def vals(name: str, value: int, default: str) -> str:
    """The value string a registered field prints for ``value`` (Wireshark's ``VALS``)."""
    strings = HF[name].strings
    return strings.get(value, default) if strings is not None else default


_UINT_BITS = {"uint8": 8, "uint16": 16, "uint24": 24, "uint32": 32, "uint64": 64}
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def holds(reg: FieldReg, value: object) -> bool:
    """A registration's type holds a drawn value: an integer in range, an address of its
    family, a MAC's text for ``ether``; a layer (``protocol``) carries nothing, the bytes
    it covers or (the frame) its length."""
    t = reg.ftype
    if t in _UINT_BITS:
        return type(value) is int and 0 <= value < 1 << _UINT_BITS[t]
    kinds: dict[str, Any] = {"bool": bool, "ipv4": ipaddress.IPv4Address,
                             "ipv6": ipaddress.IPv6Address, "bytes": bytes, "string": str}
    if t in kinds:
        return type(value) is kinds[t]
    if t == "ether":
        return isinstance(value, str) and _MAC.fullmatch(value) is not None
    if t == "none":
        return value is None
    if t == "protocol":
        return value is None or type(value) in (bytes, int)
    return False
