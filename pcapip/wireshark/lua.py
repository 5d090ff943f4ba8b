"""The Wireshark Lua dissector for TOA options, written from pcapip's registry.

Wireshark (checked with 4.0) has a ``tcp.option`` dissector table: its TCP
dissector walks the options itself (EOL ends the walk, a length below 2 or
past the header stops it with Wireshark's own expert item) and hands every
complete option whose kind is registered there to that dissector, kind and
length bytes included. Registering the TOA kinds there puts the TOA subtree
exactly where Wireshark shows the other options, and makes Wireshark's walk
the receiving module's walk: an option a TOA module would never reach never
reaches the plugin either.

Adding a kind to the table replaces Wireshark's own dissector for it (253/254
are the RFC 6994 experiments, 28 is User Timeout), so the plugin keeps the
old handle and passes back every option of such a kind that pcapip does not
read as a TOA (28 with length 4; a 253/254 option of no TOA length, which is
an RFC 6994 experiment whatever its id): Wireshark's own
view of User Timeout and of the RFC 6994 experiments is unchanged. One
exception: a Lua plugin cannot hand on the TCP header that the TCP dissector
passes its option dissectors, and in 4.0 the Fast Open cookie branch of the
experimental-option dissector reads it (tshark crashes if it is called from
Lua), so an experimental-form TFO cookie is drawn by the plugin as plain text.
Only calls known to ignore the header are made (User Timeout; experiments
other than a TFO cookie); an option of a user-added kind that Wireshark
dissects itself is drawn as plain text for the same reason.

Wireshark cannot give one filter name two field types (an IPv4 and an IPv6
``toa.addr`` make ``toa.addr == 203.0.113.1`` fail to compile and IPv6
comparisons match IPv4 options), so IPv6 addresses are ``toa.addr6`` and
``toa.vip6`` in Wireshark; see :mod:`pcapip.wireshark.layout`.

Everything that varies with the registry (kinds, lengths, field names and
positions, expert codes and severities) is data in the generated file; the
Lua code only walks that data, so the plugin cannot drift from ``pcapip show``.
The Lua code itself is in :mod:`pcapip.wireshark.lua_template`.
"""

from __future__ import annotations

from pcapip import __version__
from pcapip.dissect import CODES, DEFAULT_REGISTRY, Severity, ToaRegistry
from pcapip.dissect.hf import HF
from pcapip.dissect.toa_registry import EXPERIMENTAL_KINDS, KIND_UTO
from pcapip.wireshark.layout import (
    DATA,
    KIND,
    LEN,
    NEEDS_KIND_BEFORE,
    VARIANT,
    Placement,
    VariantLayout,
    WsField,
    plugin_fields,
    variant_layouts,
)
from pcapip.wireshark.lua_template import TEMPLATE

PLUGIN_FILENAME = "pcapip_toa.lua"

# Expert codes the plugin raises, with Wireshark's expert group for each. The walk-level codes
# pcapip raises for options Wireshark never hands over (toa.after_eol, toa.after_broken,
# toa.truncated, toa.walk_broken) have Wireshark's own TCP expert items instead.
EXPERT_GROUPS: dict[str, str] = {
    "toa.unknown_length": "MALFORMED",
    "toa.bad_version": "MALFORMED",
    "toa.unknown_layout": "UNDECODED",
    "toa.exp_ambiguous": "PROTOCOL",
    "toa.v4_mapped": "PROTOCOL",
    "toa.cross_family": "PROTOCOL",
    "toa.zero_client": "PROTOCOL",
    "toa.vip_without_client": "PROTOCOL",
    "toa.disagree": "PROTOCOL",
    "toa.duplicate": "PROTOCOL",
}

_SEVERITY = {
    Severity.CHAT: "CHAT",
    Severity.NOTE: "NOTE",
    Severity.WARN: "WARN",
    Severity.ERROR: "ERROR",
}

# Standard (non-TOA) uses of a TOA kind, handed back to Wireshark: User Timeout is 28 length 4.
NOT_TOA: dict[int, tuple[int, ...]] = {KIND_UTO: (4,)}


def lua_str(text: str) -> str:
    """A Lua string literal (5.1-5.4): printable ASCII as is, everything else as \\ddd bytes."""
    out = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def _place(p: Placement | None) -> str:
    return "nil" if p is None else f"{{ {lua_str(p.abbrev)}, {p.offset}, {p.length} }}"


def _variant_entry(lay: VariantLayout) -> str:
    v = lay.variant
    fields = ", ".join(_place(p) for p in lay.placements)
    needs = NEEDS_KIND_BEFORE.get(v.name)
    return (
        f"    [{v.length}] = {{\n"
        f"      name = {lua_str(v.name)}, vendors = {lua_str(v.vendors)},\n"
        f"      carries = {lua_str(v.carries)}, needs_kind_before = {needs or 'nil'},\n"
        f"      fields = {{ {fields} }},\n"
        f"      client_addr = {_place(lay.client_addr)}, client_port = {_place(lay.client_port)},\n"
        f"      vip_addr = {_place(lay.vip_addr)}, vip_port = {_place(lay.vip_port)},\n"
        f"      version = {_place(lay.version)},\n"
        f"    }},"
    )


def _variants_table(layouts: list[VariantLayout]) -> str:
    by_kind: dict[int, list[VariantLayout]] = {}
    for lay in layouts:
        by_kind.setdefault(lay.variant.kind, []).append(lay)
    parts = []
    for kind in sorted(by_kind):
        entries = "\n".join(_variant_entry(lay) for lay in by_kind[kind])
        parts.append(f"  [{kind}] = {{\n{entries}\n  }},")
    return "\n".join(parts)


def _int_set(values: list[int] | tuple[int, ...]) -> str:
    return ", ".join(f"[{v}] = true" for v in values)


def _filters_text(fields: list[WsField]) -> str:
    """The header comment's filter names: the protocol, then every field (addresses typed)."""
    words = ["toa"] + [
        f"{f.abbrev} ({'IPv4' if f.ftype == 'ipv4' else 'IPv6'})" if f.ftype in ("ipv4", "ipv6")
        else f.abbrev for f in fields
    ]
    lines = [""]
    for w in words:
        if lines[-1] and len(lines[-1]) + len(w) > 80:
            lines[-1] += ","
            lines.append("")
        lines[-1] += f", {w}" if lines[-1] else w
    return "\n--            ".join(lines)


#: RFC 6994 experiment ids and names: the value strings of their field registration
_EXIDS = sorted((HF["tcp.options.experimental.exid"].strings or {}).items())


def render_plugin(registry: ToaRegistry = DEFAULT_REGISTRY) -> str:
    """The complete Lua plugin for ``registry``'s kinds and variants."""
    layouts = variant_layouts(registry)
    fields = plugin_fields(registry)
    kinds = sorted(registry.kinds)
    field_rows = "\n".join(
        f"  {{ {lua_str(f.abbrev)}, {lua_str(f.label)}, {lua_str(f.ftype)}, {lua_str(f.display)} }},"
        for f in fields
    )
    expert_rows = "\n".join(
        f"  {{ {lua_str(code)}, {lua_str(CODES[code].meaning)}, {lua_str(group)}, "
        f"{lua_str(_SEVERITY[CODES[code].severity])} }},"
        for code, group in EXPERT_GROUPS.items()
    )
    lengths = "\n".join(
        f"  [{k}] = {lua_str(', '.join(map(str, registry.lengths(k))))}," for k in kinds
    )
    not_toa = ", ".join(
        f"[{k}] = {{ {_int_set(lens)} }}" for k, lens in sorted(NOT_TOA.items()) if k in kinds
    )
    return TEMPLATE.substitute(
        version=__version__,
        kinds_text=", ".join(map(str, kinds)),
        filters_text=_filters_text(fields),
        fields=field_rows,
        variants=_variants_table(layouts),
        lengths=lengths,
        experts=expert_rows,
        experimental=_int_set(EXPERIMENTAL_KINDS),
        exids16=", ".join(f"[0x{k:04X}] = {lua_str(v)}" for k, v in _EXIDS if k <= 0xFFFF),
        exids32=", ".join(f"[0x{k:08X}] = {lua_str(v)}" for k, v in _EXIDS if k > 0xFFFF),
        not_toa=not_toa,
        f_kind=lua_str(KIND),
        f_len=lua_str(LEN),
        f_variant=lua_str(VARIANT),
        f_data=lua_str(DATA),
    )
