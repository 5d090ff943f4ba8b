"""Result types of the PROXY protocol parser.

A parse has four outcomes because a TCP stream arrives in pieces: the bytes
so far may be a complete header (OK), the start of one (NEED_MORE), something
that can never become one (NOT_PROXY), or a header that breaks a rule of the
specification (MALFORMED). The flow stage feeds more bytes only on NEED_MORE.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from pcapip.dissect.fields import Expert, Field, Severity

# how a v2 header starts, and its fixed part (signature, version/command, family, length):
# here, so detection (pcapip.dissect.proxy) does not load the v2 parser for a v1 header
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
FIXED = 16


class ParseState(enum.Enum):
    OK = "ok"
    NEED_MORE = "need-more"
    NOT_PROXY = "not-proxy"
    MALFORMED = "malformed"


@dataclass
class ProxyTlv:
    """One v2 TLV (SSL sub-TLVs are its children)."""

    type: int
    name: str
    value: Any
    offset: int  # absolute offset of the type byte
    length: int  # whole TLV including its 3-byte header
    children: list[ProxyTlv] = field(default_factory=list)


@dataclass
class ProxyHeader:
    """What the proxy told the origin.

    For LOCAL (v2) and UNKNOWN (v1) headers, and for the UNSPEC family, the
    address fields stay None even when address bytes are present: receivers
    must use the real connection endpoints then, and a consumer looking for
    "the client" must not pick up bytes the receiver ignores. The field tree
    still shows those bytes.
    """

    version: int  # 1 | 2
    command: str  # "PROXY" | "LOCAL"
    family: str  # v1: "TCP4" "TCP6" "UNKNOWN"; v2: "UNSPEC" "INET" "INET6" "UNIX"
    transport: str  # "STREAM" "DGRAM" "UNSPEC"
    src_addr: str | None = None
    dst_addr: str | None = None
    src_port: int | None = None
    dst_port: int | None = None
    length: int = 0  # bytes of the whole header (v1 incl. CRLF; v2 16 + len)
    tlvs: list[ProxyTlv] = field(default_factory=list)
    crc32c: str | None = None  # "ok" | "bad" | None when no CRC32C TLV

    def tlv(self, name: str) -> ProxyTlv | None:
        """First TLV (or SSL sub-TLV) with this name."""
        for t in self.tlvs:
            if t.name == name:
                return t
            for c in t.children:
                if c.name == name:
                    return c
        return None


@dataclass
class ProxyParse:
    state: ParseState
    need: int = 0  # NEED_MORE: at least this many more bytes
    header: ProxyHeader | None = None  # OK; MALFORMED: what could be decoded, or None
    length: int = 0  # bytes occupied by the header when known
    tree: Field | None = None  # Wireshark-style tree ("proxy" root)
    experts: list[Expert] = field(default_factory=list)

    @property
    def reason(self) -> str | None:
        """Message of the first ERROR expert (why the header is MALFORMED)."""
        for e in self.experts:
            if e.severity >= Severity.ERROR:
                return e.message
        return None

    @property
    def codes(self) -> list[str]:
        return [e.code for e in self.experts]


def transport_oddity(h: ProxyHeader | None, udp: bool) -> tuple[str, str] | None:
    """(expert code, message) when header ``h`` travels in a transport it does not describe
    (v1 in UDP; v2 PROXY saying STREAM in UDP or DGRAM in TCP), else None. Receivers accept
    it; ``show`` marks it in the tree, ``analyze`` in the flow's findings."""
    if h is None:
        return None
    if h.version == 1 and udp:
        return "proxy.v1.over_udp", "PROXY v1 header in a UDP datagram (v1 describes TCP only)"
    other = "STREAM" if udp else "DGRAM"  # (UNSPEC says nothing)
    if h.version == 2 and h.command == "PROXY" and h.transport == other:
        return ("proxy.transport_mismatch",
                f"header says {other} but it travels in {'UDP' if udp else 'TCP'}")
    return None
