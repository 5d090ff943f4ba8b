"""TCP options, walked the way a receiving TOA kernel module walks them.

The question is never only "is there a TOA in these bytes" but "would the
origin's module see it": modules stop at EOL, step over NOP, abort the whole
walk on a length below 2 or past the header, and take the first exact
kind+length match. So the walk here is that walk, and everything it would miss
(a TOA after EOL, a TOA behind a broken option, a second TOA that disagrees)
is still decoded and reported, never dropped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pcapip.dissect.addr import ip_value, ipv4_text, ipv6_text, is_v4_mapped
from pcapip.dissect.codes import expert
from pcapip.dissect.fields import Expert, Field, Severity
from pcapip.dissect.hf import HF, item, subtree
from pcapip.dissect.hf_layers import EXPERIMENT_IDS, TCP_OPTIONS
from pcapip.dissect.toa_registry import (
    DEFAULT_REGISTRY,
    EXPERIMENTAL_KINDS,
    KIND_UTO,
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

EOL, NOP = 0, 1
# Registered RFC 6994 experiment ids: the value strings of tcp.options.experimental.exid
# (pcapip.dissect.hf_layers), 16-bit and 32-bit. A 253/254 option with any id, listed or not,
# is not a TOA unless its length is a TOA variant's (ToaRegistry.claims); the list only names it.
KNOWN_EXIDS16 = {k: v for k, v in EXPERIMENT_IDS.items() if k <= 0xFFFF}
KNOWN_EXIDS32 = {k: v for k, v in EXPERIMENT_IDS.items() if k > 0xFFFF}
# AccECN option counters (24-bit each) in the order each experiment id sends them
_ACCECN_ORDER = {
    0xACC0: ("ee0b", "eceb", "ee1b"),
    0xACC1: ("ee1b", "eceb", "ee0b"),
}
_OPTION_NAMES = TCP_OPTIONS  # kind -> (name under tcp.options., label): the registrations'


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


@dataclass(slots=True)
class ToaResult:
    """What the option bytes say about the client, and what a receiver would take."""

    options: list[ToaOption]
    client_ip: str | None
    client_port: int | None
    vip_ip: str | None
    vip_port: int | None
    experts: list[Expert]
    tree: Field

    @property
    def malformed(self) -> bool:
        """True when any TOA-related ERROR expert was raised."""
        return any(e.severity >= Severity.ERROR for e in self.all_experts())

    def all_experts(self) -> list[Expert]:
        return self.experts + [e for o in self.options for e in o.experts]


def _ip_text(b: bytes) -> str:
    return ipv4_text(b) if len(b) == 4 else ipv6_text(b)


def _exid_of(body: bytes) -> tuple[int | None, str | None]:
    """Known RFC 6994 experiment id at the start of a 253/254 body, if any."""
    if len(body) >= 4:
        x32 = int.from_bytes(body[:4], "big")
        if x32 in KNOWN_EXIDS32:
            return x32, KNOWN_EXIDS32[x32]
    if len(body) >= 2:
        x16 = int.from_bytes(body[:2], "big")
        if x16 in KNOWN_EXIDS16:
            return x16, KNOWN_EXIDS16[x16]
    return None, None


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
        who = opt.client_ip if opt.client_port is None else _hostport(opt.client_ip, opt.client_port)
        who = f": client {who}"
    elif opt.vip_ip is not None:
        who = f": VIP {_hostport(opt.vip_ip, opt.vip_port)}"
    return f"{toa} {opt.variant.name} (kind {opt.kind}){who}"


def _hostport(ip: str, port: int | None) -> str:
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _std_option(data: bytes, i: int, kind: int, length: int, base: int) -> Field:
    """Field subtree for an option that is not a TOA (Wireshark's names)."""
    short, label = _OPTION_NAMES.get(kind, ("unknown", "Unknown"))
    node = subtree(f"tcp.options.{short}", base + i, length, alt=_kind_alt(kind))
    node.add(item("tcp.option_kind", f"{label} ({kind})", base + i, 1, kind))
    if kind in (EOL, NOP):
        return node
    node.add(item("tcp.option_len", length, base + i + 1, 1, length))
    body = data[i + 2 : i + length]
    at = base + i + 2
    if kind == 2 and len(body) == 2:
        v = int.from_bytes(body, "big")
        node.label += f": {v} bytes"
        node.add(item("tcp.options.mss_val", v, at, 2, v))
    elif kind == 3 and len(body) == 1:
        node.label += f": {body[0]} (multiply by {1 << min(body[0], 14)})"
        node.add(item("tcp.options.wscale.shift", body[0], at, 1, body[0]))
        mult = 1 << min(body[0], 14)
        node.add(item("tcp.options.wscale.multiplier", mult, at, 1, mult, generated=True))
    elif kind == 5 and len(body) % 8 == 0:
        for j in range(0, len(body), 8):
            le, re = struct.unpack_from("!II", body, j)
            node.add(item("tcp.options.sack_le", le, at + j, 4, le))
            node.add(item("tcp.options.sack_re", re, at + j + 4, 4, re))
    elif kind == 8 and len(body) == 8:
        tsval, tsecr = struct.unpack("!II", body)
        node.label += f": TSval {tsval}, TSecr {tsecr}"
        node.add(item("tcp.options.timestamp.tsval", tsval, at, 4, tsval))
        node.add(item("tcp.options.timestamp.tsecr", tsecr, at + 4, 4, tsecr))
    elif kind == KIND_UTO and len(body) == 2:
        raw = int.from_bytes(body, "big")
        g, val = bool(raw >> 15), raw & 0x7FFF
        node.add(item("tcp.options.user_to_granularity", "minutes" if g else "seconds", at, 2, g))
        node.add(item("tcp.options.user_to_val", val, at, 2, val))
    elif kind in EXPERIMENTAL_KINDS and len(body) >= 2:
        _experiment(node, body, at)
    elif kind == 34:
        node.add(_tfo(body, at))
    elif body:
        node.add(item("tcp.options.unknown.payload", body.hex(), at, len(body), body))
    return node


def _kind_alt(kind: int) -> str:
    """A 253/254 node's wording until its experiment id names it (``_experiment``)."""
    return f"TCP Option - {_OPTION_NAMES[kind][1]}" if kind in EXPERIMENTAL_KINDS else ""


def _tfo(cookie: bytes, at: int) -> Field:
    if cookie:
        return item("tcp.options.tfo.cookie", cookie.hex(), at, len(cookie), cookie)
    return subtree("tcp.options.tfo.request", at, 0, True)


def _experiment(node: Field, body: bytes, at: int) -> None:
    """An RFC 6994 option's experiment id and data, the way Wireshark draws them."""
    exid, what = _exid_of(body)
    size = 4 if exid is not None and exid > 0xFFFF else 2
    if exid is None:
        exid = int.from_bytes(body[:2], "big")
    node.label = f"{HF[node.name].label}: {what or 'Unknown'}"
    shown = f"0x{exid:0{size * 2}x}" + (f" ({what})" if what else "")
    node.add(item("tcp.options.experimental.exid", shown, at, size, exid))
    rest, rat = body[size:], at + size
    order = _ACCECN_ORDER.get(exid)
    if exid == 0xF989:
        node.label = HF["tcp.options.tfo"].label
        node.add(_tfo(rest, rat))
    elif order is not None and len(rest) % 3 == 0 and len(rest) <= 9:
        for j, name in enumerate(order[: len(rest) // 3]):
            v = int.from_bytes(rest[3 * j : 3 * j + 3], "big")
            node.add(item(f"tcp.options.acc_ecn.{name}", v, rat + 3 * j, 3, v))
    elif rest:
        node.add(item("tcp.options.experimental.data", rest.hex(), rat, len(rest), rest))


def _classify(
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
        exid, exp_name = _exid_of(body)
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
                   f"TOA client is {_hostport(opt.client_ip, opt.client_port)}")
        )


def _broken(data: bytes, i: int, kind: int, length: int | None, base: int, why: str) -> Field:
    """The node of an option the walk cannot step over: its kind, its length if any."""
    name = f"tcp.options.{_OPTION_NAMES.get(kind, ('unknown', ''))[0]}"
    node = subtree(name, base + i, len(data) - i, data[i:], alt="TCP Option - kind",
                   more=f" {kind}{why}")
    node.add(item("tcp.option_kind", kind, base + i, 1, kind))
    if length is not None:
        node.add(item("tcp.option_len", length, base + i + 1, 1, length))
    return node


def _scan_for_toa(data: bytes, start: int, registry: ToaRegistry) -> list[int]:
    """Offsets after ``start`` where a TOA (kind + an exact variant length) would fit."""
    found = []
    j, n = start, len(data)
    while j + 1 < n:
        k, ln = data[j], data[j + 1]
        if k in registry.kinds and registry.lookup(k, ln) is not None and j + ln <= n:
            found.append(j)
            j += ln
        else:
            j += 1
    return found


def dissect_tcp_options(
    options: bytes | memoryview,
    *,
    base_offset: int = 0,
    registry: ToaRegistry = DEFAULT_REGISTRY,
    ip_version: int | None = None,
    wire_length: int | None = None,
    build_tree: bool = True,
) -> ToaResult:
    """Walk TCP option bytes like a receiving module; decode every TOA-kind option.

    ``base_offset`` is the absolute offset of the first option byte (for the
    tree); ``ip_version`` (4/6), when known, lets cross-family TOAs be noted;
    ``wire_length``, when larger than the bytes given, says the capture cut
    the options short, so an option running past the captured bytes is
    "not captured" rather than a walk error. ``build_tree=False`` draws no option
    nodes (the tree is the bare ``tcp.options`` item and the nodes of a broken walk),
    for callers that need only the TOA values and experts, as the flow stage does:
    the same walk, values and experts at a fraction of the cost. Never raises on any
    input.
    """
    data = bytes(options)
    try:
        return _dissect(data, base_offset, registry, ip_version, wire_length, build_tree)
    except Exception as exc:  # a dissector bug must not take the analysis down
        e = expert("dissect.internal_error", base_offset, len(data),
                   f"TCP option dissector failed: {type(exc).__name__}: {exc}")
        root = item("tcp.options", f"({len(data)} bytes)", base_offset, len(data), data)
        root.experts.append(e)
        return ToaResult([], None, None, None, None, [e], root)


def _dissect(data: bytes, base: int, registry: ToaRegistry, ip_version: int | None,
             wire_length: int | None, build_tree: bool) -> ToaResult:
    n = len(data)
    wire = n if wire_length is None else max(n, wire_length)
    root = item("tcp.options", f"({n} bytes)", base, n, data)
    toas: list[ToaOption] = []
    walk_experts: list[Expert] = []
    phase = "walk"  # "walk" -> "after_eol" (lenient continuation) ; a break ends the loop
    i = 0
    eol_at = -1
    kinds = registry.kinds
    while i < n:
        kind = data[i]
        if kind == EOL:
            if phase == "walk":
                phase, eol_at = "after_eol", i
                if build_tree:
                    root.add(_std_option(data, i, EOL, 1, base))
                rest = data[i + 1 :]
                if rest and rest.count(0) == len(rest):
                    if build_tree:
                        root.add(item("tcp.options.padding", f"{len(rest)} bytes",
                                       base + i + 1, len(rest), rest))
                    break
                if rest:
                    e = expert("toa.nonzero_after_eol", base + i + 1, len(rest),
                               f"{len(rest)} bytes after EOL are not all zero; "
                               "receivers stop at EOL and never read them")
                    walk_experts.append(e)
                    root.experts.append(e)
            elif build_tree:
                root.add(_std_option(data, i, EOL, 1, base))
            i += 1
            continue
        if kind == NOP:
            if build_tree:
                root.add(_std_option(data, i, NOP, 1, base))
            i += 1
            continue
        # an option with a length byte
        if i + 1 >= n:
            reason = f"option kind {kind} at the last byte has no length byte"
            length = None
        else:
            length = data[i + 1]
            reason = None
            if length < 2:
                reason = f"option kind {kind} has length {length} (below 2)"
            elif i + length > n:
                reason = (f"option kind {kind} length {length} runs {i + length - n} bytes "
                          f"past the end of the {n} option bytes")
        if reason is not None and wire > n and (length is None or i + length <= wire):
            # the option is complete on the wire; the capture just ends inside it
            span = n - i
            cut = _broken(data, i, kind, length, base, " (cut by the capture)")
            e = expert("frame.truncated", base + i, span,
                       f"option kind {kind} continues past the {n} captured option bytes "
                       f"(the header has {wire})")
            cut.experts.append(e)
            root.add(cut)
            if length is not None and registry.claims(kind, length):
                t = ToaOption(kind, length, base + i, registry.lookup(kind, length),
                              reached=phase == "walk")
                t.experts.append(e)
                t.tree = cut
                toas.append(t)
            break
        if reason is not None:
            span = n - i
            bad = _broken(data, i, kind, length, base, ", broken")
            where = "the receiving walk aborts here" if phase == "walk" else "(after EOL)"
            e = expert("toa.walk_broken", base + i, span, f"{reason}: {where}")
            bad.experts.append(e)
            walk_experts.append(e)
            root.add(bad)
            if length is not None and length >= 2 and registry.claims(kind, length):
                # a TOA kind cut short: report it as an (unreachable, truncated) TOA
                t = ToaOption(kind, length, base + i, registry.lookup(kind, length), reached=False)
                e = expert("toa.truncated", base + i, span,
                           f"TOA kind {kind} length {length} but only {span} option bytes remain")
                t.experts.append(e)
                bad.experts.append(e)
                t.tree = bad
                toas.append(t)
            for j in _scan_for_toa(data, i + 1, registry):
                ln = data[j + 1]
                t = _classify(data, j, data[j], ln, base, registry, ip_version, build_tree)
                if t is None:
                    continue
                t.reached = False
                code = "toa.after_eol" if phase == "after_eol" else "toa.after_broken"
                t.experts.append(expert(code, base + j, ln,
                                        f"TOA kind {data[j]} at option offset {j} lies after "
                                        f"the broken option at offset {i}: receivers never see it"))
                if t.tree is not None:
                    t.tree.generated = True
                    bad.add(t.tree)
                toas.append(t)
            break
        assert length is not None
        t = None
        if kind in kinds:
            t = _classify(data, i, kind, length, base, registry, ip_version, build_tree)
        if t is not None:
            if phase == "after_eol":
                t.reached = False
                t.experts.append(expert("toa.after_eol", base + i, length,
                                        f"TOA kind {kind} at option offset {i} follows EOL at "
                                        f"offset {eol_at}: receivers stop at EOL and never see it"))
            if t.tree is not None:
                root.add(t.tree)
            toas.append(t)
        elif build_tree:
            root.add(_std_option(data, i, kind, length, base))
        i += length

    result = ToaResult(toas, None, None, None, None, walk_experts, root)
    _choose(result, base)
    return result


def _choose(res: ToaResult, base: int) -> None:
    """What a receiver takes: the first reached exact match; flag disagreement and orphans."""
    seen_254 = False
    clients: list[ToaOption] = []
    for o in res.options:
        v = o.variant
        if v is not None and v.name == "alibaba-vip" and not seen_254:
            o.experts.append(expert("toa.vip_without_client", o.offset, o.length,
                                    "kind 250 (the VIP) is not preceded by a kind 254 client "
                                    "option in this segment"))
        if o.kind == 254 and v is not None:
            seen_254 = True
        if not o.reached or v is None:
            continue
        if o.client_ip is not None and res.client_ip is None:
            res.client_ip, res.client_port = o.client_ip, o.client_port
        if o.vip_ip is not None and res.vip_ip is None:
            res.vip_ip, res.vip_port = o.vip_ip, o.vip_port
        if o.client_ip is not None:
            clients.append(o)
    if len(clients) > 1:
        first = clients[0]
        for o in clients[1:]:
            same_ip = o.client_ip == first.client_ip
            same_port = o.client_port is None or first.client_port is None or \
                o.client_port == first.client_port
            if same_ip and same_port:
                e = expert("toa.duplicate", o.offset, o.length,
                           f"TOA kind {o.kind} repeats the client {o.client_ip}")
            else:
                e = expert("toa.disagree", o.offset, o.length,
                           f"TOA kind {o.kind} says the client is "
                           f"{_hostport(o.client_ip or '?', o.client_port)} but kind {first.kind} "
                           f"at offset {first.offset - base} says "
                           f"{_hostport(first.client_ip or '?', first.client_port)}")
            res.experts.append(e)
            res.tree.experts.append(e)
