"""The TCP options that are not a TOA, drawn the way Wireshark draws them.

``pcapip show`` and the TUI print these trees beside tshark's, so the names, labels and
nesting follow Wireshark's TCP dissector (``tcp.options.*``), RFC 6994 experiment ids
and AccECN counters included. The TOA walk (:mod:`pcapip.dissect.tcp_options`) calls
these for every option it steps over that is not a client address.
"""

from __future__ import annotations

import struct

from pcapip.dissect.fields import Field
from pcapip.dissect.hf import HF, item, subtree
from pcapip.dissect.hf_layers import EXPERIMENT_IDS, TCP_OPTIONS
from pcapip.dissect.toa_registry import EXPERIMENTAL_KINDS, KIND_UTO

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


def exid_of(body: bytes) -> tuple[int | None, str | None]:
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


def std_option(data: bytes, i: int, kind: int, length: int, base: int) -> Field:
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
    exid, what = exid_of(body)
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


def broken_option(data: bytes, i: int, kind: int, length: int | None, base: int,
                  why: str) -> Field:
    """The node of an option the walk cannot step over: its kind, its length if any."""
    name = f"tcp.options.{_OPTION_NAMES.get(kind, ('unknown', ''))[0]}"
    node = subtree(name, base + i, len(data) - i, data[i:], alt="TCP Option - kind",
                   more=f" {kind}{why}")
    node.add(item("tcp.option_kind", kind, base + i, 1, kind))
    if length is not None:
        node.add(item("tcp.option_len", length, base + i + 1, 1, length))
    return node
