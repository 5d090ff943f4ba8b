"""Wireshark-style field trees shared by every dissector and every view.

One tree feeds ``pcapip show``, the TUI detail pane and the Wireshark plugin, so
field names follow Wireshark's display-filter names where Wireshark has them.
Offsets are absolute within the buffer the dissector was given plus the
``base_offset`` the caller passed, so a view can highlight the right bytes of
the whole frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


def escape_text(text: str) -> str:
    """Text from the wire made safe to print: ``\\`` for a backslash, ``\\xNN`` (``\\uNNNN``)
    for anything not printable, so every output shows the same unambiguous string
    and a NUL or a control character never reaches a terminal or a CSV cell raw."""
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif c.isprintable():
            out.append(c)
        else:
            o = ord(c)
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000
                       else f"\\U{o:08x}")
    return "".join(out)


class Severity(IntEnum):
    """Expert-info severities, ordered like Wireshark's (chat < note < warn < error)."""

    CHAT = 0
    NOTE = 1
    WARN = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return ("chat", "note", "warning", "error")[self.value]


@dataclass(frozen=True)
class FieldReg:
    """One field registration, like an entry of Wireshark's ``hf[]`` (a Lua ``ProtoField``).

    The tables are in ``pcapip.dissect.hf``; a tree item of the field says
    ``label: value`` (or ``label`` and more, for a subtree), unless the dissector picks one
    of ``also``, the other wordings it uses for the same field (Wireshark's
    ``proto_tree_add_*_format``).
    """

    abbrev: str  # display-filter name
    label: str  # what the tree item says before the value
    # a Lua ProtoField type: uint8 uint16 uint24 uint32 uint64 bool ipv4 ipv6 ether bytes string
    # none (a subtree with no value) protocol (a layer)
    ftype: str
    display: str = ""  # integers the plugin declares: "dec" or "dec_hex"
    strings: Mapping[int, str] | None = None  # value strings (VALS) the tree prints
    mask: int = 0  # a bitfield's bits within its byte: the tree draws their picture
    also: tuple[str, ...] = ()


@dataclass(slots=True)
class Expert:
    """A problem (or remark) attached to specific bytes.

    ``code`` is a stable identifier (``proxy.v1.leading_zero``,
    ``toa.after_eol`` ...) that tests, findings and filters key on; ``message``
    is for people and may change.
    """

    severity: Severity
    code: str
    message: str
    offset: int = 0
    length: int = 0


@dataclass(slots=True)
class Field:
    """One node of a field tree: a filter name, a label, where it is and what it means."""

    name: str  # display-filter style name: "proxy.src.ipv4", "toa.port"
    label: str  # what a person reads: "Source Address: 119.29.135.205"
    offset: int  # absolute byte offset
    length: int  # bytes covered (0 for generated fields)
    value: Any = None  # typed value: int, str, bytes, bool, ipaddress.*, None
    children: list[Field] = field(default_factory=list)
    experts: list[Expert] = field(default_factory=list)
    generated: bool = False  # Wireshark's [brackets]: derived, not on the wire

    def add(self, child: Field) -> Field:
        self.children.append(child)
        return child

    def walk(self) -> Iterator[Field]:
        """Depth-first, pre-order traversal including self."""
        yield self
        for c in self.children:
            yield from c.walk()

    def find(self, name: str) -> Field | None:
        """First field with this filter name in the subtree (pre-order)."""
        return next((f for f in self.walk() if f.name == name), None)

    def find_all(self, name: str) -> list[Field]:
        return [f for f in self.walk() if f.name == name]

    def all_experts(self) -> list[Expert]:
        return [e for f in self.walk() for e in f.experts]

    def render(self, indent: int = 0) -> str:
        """Plain-text tree, like Wireshark's packet details pane."""
        pad = "    " * indent
        label = f"[{self.label}]" if self.generated else self.label
        lines = [pad + label]
        for e in self.experts:
            lines.append(f"{pad}    [Expert Info ({e.severity.label}): {e.message}]")
        for c in self.children:
            lines.append(c.render(indent + 1))
        return "\n".join(lines)
