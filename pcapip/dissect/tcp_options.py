"""TCP options, walked the way a receiving TOA kernel module walks them.

The question is never only "is there a TOA in these bytes" but "would the
origin's module see it": modules stop at EOL, step over NOP, abort the whole
walk on a length below 2 or past the header, and take the first exact
kind+length match. So the walk here is that walk, and everything it would miss
(a TOA after EOL, a TOA behind a broken option, a second TOA that disagrees)
is still decoded and reported, never dropped.

Its parts: ``toa_option`` decodes an option of a TOA kind (the variants' bodies),
``tcp_option_tree`` draws every other option as Wireshark does.
"""

from __future__ import annotations

from dataclasses import dataclass

from pcapip.dissect.codes import expert
from pcapip.dissect.fields import Expert, Field, Severity
from pcapip.dissect.hf import item
from pcapip.dissect.tcp_option_tree import EOL, NOP, broken_option, std_option
from pcapip.dissect.toa_option import ToaOption, classify_toa, decode_body, hostport
from pcapip.dissect.toa_registry import DEFAULT_REGISTRY, ToaRegistry

__all__ = ["ToaOption", "ToaResult", "decode_body", "dissect_tcp_options"]


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
    """The receiving walk: EOL, NOP, then one option per length byte until a broken one."""
    n = len(data)
    wire = n if wire_length is None else max(n, wire_length)
    walk = _Walk(data, base, registry, ip_version, build_tree)
    i = 0
    while i < n:
        kind = data[i]
        if kind == EOL:
            if walk.eol(i):
                break
            i += 1
            continue
        if kind == NOP:
            if build_tree:
                walk.root.add(std_option(data, i, NOP, 1, base))
            i += 1
            continue
        # an option with a length byte
        length, reason = _length(data, i, kind)
        if reason is not None and wire > n and (length is None or i + length <= wire):
            walk.cut(i, kind, length, wire)  # complete on the wire; the capture ends inside it
            break
        if reason is not None:
            walk.broken(i, kind, length, reason)
            break
        assert length is not None
        walk.option(i, kind, length)
        i += length

    result = ToaResult(walk.toas, None, None, None, None, walk.walk_experts, walk.root)
    _choose(result, base)
    return result


def _length(data: bytes, i: int, kind: int) -> tuple[int | None, str | None]:
    """The length byte of the option at ``i`` (None: there is none), and why the walk cannot
    step over it (None: it can)."""
    n = len(data)
    if i + 1 >= n:
        return None, f"option kind {kind} at the last byte has no length byte"
    length = data[i + 1]
    if length < 2:
        return length, f"option kind {kind} has length {length} (below 2)"
    if i + length > n:
        return length, (f"option kind {kind} length {length} runs {i + length - n} bytes "
                        f"past the end of the {n} option bytes")
    return length, None


class _Walk:
    """What the walk has found so far. ``phase`` is "walk" until an EOL, then "after_eol":
    receivers stop there, so later options are still decoded but never reached."""

    def __init__(self, data: bytes, base: int, registry: ToaRegistry, ip_version: int | None,
                 build_tree: bool) -> None:
        self.data, self.base, self.registry = data, base, registry
        self.ip_version, self.build_tree = ip_version, build_tree
        self.root = item("tcp.options", f"({len(data)} bytes)", base, len(data), data)
        self.toas: list[ToaOption] = []
        self.walk_experts: list[Expert] = []
        self.phase = "walk"
        self.eol_at = -1

    def eol(self, i: int) -> bool:
        """An EOL at ``i``; True when only zero padding follows (the walk is over)."""
        data, base, root = self.data, self.base, self.root
        if self.phase != "walk":
            if self.build_tree:
                root.add(std_option(data, i, EOL, 1, base))
            return False
        self.phase, self.eol_at = "after_eol", i
        if self.build_tree:
            root.add(std_option(data, i, EOL, 1, base))
        rest = data[i + 1 :]
        if rest and rest.count(0) == len(rest):
            if self.build_tree:
                root.add(item("tcp.options.padding", f"{len(rest)} bytes",
                              base + i + 1, len(rest), rest))
            return True
        if rest:
            e = expert("toa.nonzero_after_eol", base + i + 1, len(rest),
                       f"{len(rest)} bytes after EOL are not all zero; "
                       "receivers stop at EOL and never read them")
            self.walk_experts.append(e)
            root.experts.append(e)
        return False

    def cut(self, i: int, kind: int, length: int | None, wire: int) -> None:
        """An option the capture cut short (the header on the wire had all of it)."""
        data, base, registry = self.data, self.base, self.registry
        n = len(data)
        span = n - i
        cut = broken_option(data, i, kind, length, base, " (cut by the capture)")
        e = expert("frame.truncated", base + i, span,
                   f"option kind {kind} continues past the {n} captured option bytes "
                   f"(the header has {wire})")
        cut.experts.append(e)
        self.root.add(cut)
        if length is not None and registry.claims(kind, length):
            t = ToaOption(kind, length, base + i, registry.lookup(kind, length),
                          reached=self.phase == "walk")
            t.experts.append(e)
            t.tree = cut
            self.toas.append(t)

    def broken(self, i: int, kind: int, length: int | None, reason: str) -> None:
        """An option the walk cannot step over: a receiver aborts here. A TOA kind cut short
        is reported as an unreachable, truncated TOA, and every TOA that fits after it as
        unreachable."""
        data, base, registry = self.data, self.base, self.registry
        span = len(data) - i
        bad = broken_option(data, i, kind, length, base, ", broken")
        where = "the receiving walk aborts here" if self.phase == "walk" else "(after EOL)"
        e = expert("toa.walk_broken", base + i, span, f"{reason}: {where}")
        bad.experts.append(e)
        self.walk_experts.append(e)
        self.root.add(bad)
        if length is not None and registry.claims(kind, length):
            t = ToaOption(kind, length, base + i, registry.lookup(kind, length), reached=False)
            e = (expert("toa.unknown_length", base + i, span,
                        f"TOA kind {kind} with length {length}, which no variant has")
                 if length < 2 else
                 expert("toa.truncated", base + i, span,
                        f"TOA kind {kind} length {length} but only {span} option bytes remain"))
            t.experts.append(e)
            bad.experts.append(e)
            t.tree = bad
            self.toas.append(t)
        for j in _scan_for_toa(data, i + 1, registry):
            ln = data[j + 1]
            t = classify_toa(data, j, data[j], ln, base, registry, self.ip_version,
                             self.build_tree)
            if t is None:
                continue
            t.reached = False
            code = "toa.after_eol" if self.phase == "after_eol" else "toa.after_broken"
            t.experts.append(expert(code, base + j, ln,
                                    f"TOA kind {data[j]} at option offset {j} lies after "
                                    f"the broken option at offset {i}: receivers never see it"))
            if t.tree is not None:
                t.tree.generated = True
                bad.add(t.tree)
            self.toas.append(t)

    def option(self, i: int, kind: int, length: int) -> None:
        """A complete option: a TOA (reached unless after EOL) or any other option's node."""
        data, base = self.data, self.base
        t = None
        if kind in self.registry.kinds:
            t = classify_toa(data, i, kind, length, base, self.registry, self.ip_version,
                             self.build_tree)
        if t is not None:
            if self.phase == "after_eol":
                t.reached = False
                t.experts.append(expert("toa.after_eol", base + i, length,
                                        f"TOA kind {kind} at option offset {i} follows EOL at "
                                        f"offset {self.eol_at}: receivers stop at EOL and never "
                                        "see it"))
            if t.tree is not None:
                self.root.add(t.tree)
            self.toas.append(t)
        elif self.build_tree:
            self.root.add(std_option(data, i, kind, length, base))


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
                           f"{hostport(o.client_ip or '?', o.client_port)} but kind {first.kind} "
                           f"at offset {first.offset - base} says "
                           f"{hostport(first.client_ip or '?', first.client_port)}")
            res.experts.append(e)
            res.tree.experts.append(e)
