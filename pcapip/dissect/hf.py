"""Field registrations, like Wireshark's ``hf[]``: filter name, label, type, declared once.

The TOA dissector (``tcp_options``) names and labels its fields from this table, and the
Wireshark plugin declares its ``ProtoField`` s from it (``pcapip.wireshark.layout``), so a
field has one label and one type everywhere; a tree item may still say more about one
instance (``Destination (VIP) port``), as Wireshark's ``proto_tree_add_*_format`` does.
``tests/test_dissect_hf.py`` holds the table to what the dissectors emit on every bundled
capture. Wireshark cannot give one filter name two types, so an IPv6 address has its own
name (``toa.addr6``, ``toa.vip6``), as ``ip.addr`` and ``ipv6.addr`` do.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldReg:
    """One field registration (a Lua ``ProtoField``)."""

    abbrev: str  # display-filter name
    label: str  # what the tree item says before the value
    ftype: str  # "uint8" "uint16" "uint24" "uint32" "ipv4" "ipv6" "bytes" "string"
    display: str = ""  # integers: "dec" or "dec_hex"


#: The TOA option's fields, in the order the plugin declares them.
TOA_FIELDS: tuple[FieldReg, ...] = (
    FieldReg("toa.kind", "Kind", "uint8", "dec"),
    FieldReg("toa.len", "Length", "uint8", "dec"),
    FieldReg("toa.variant", "Variant", "string"),  # generated: the registry's name for it
    FieldReg("toa.version", "Address version", "uint8", "dec"),
    FieldReg("toa.addr", "Client address", "ipv4"),
    FieldReg("toa.addr6", "Client address", "ipv6"),
    FieldReg("toa.port", "Client port", "uint16", "dec"),
    FieldReg("toa.vip", "VIP address", "ipv4"),
    FieldReg("toa.vip6", "VIP address", "ipv6"),
    FieldReg("toa.vip_port", "VIP port", "uint16", "dec"),
    FieldReg("toa.vpc_id", "VPC id", "uint32", "dec_hex"),  # 24 bits in alibaba-vpc-ipv6
    FieldReg("toa.pad", "Padding", "bytes"),
    FieldReg("toa.data", "Data", "bytes"),  # a body no variant's layout reads
)

#: filter name -> registration
HF: dict[str, FieldReg] = {f.abbrev: f for f in TOA_FIELDS}
