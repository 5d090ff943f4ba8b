"""What the flow stage needs from the dissectors, in the shape it keeps.

The dissectors build full field trees; a flow only keeps the decoded header,
the rule it broke and which packets held it, so a capture with a hundred
thousand PROXY connections does not hold a hundred thousand trees.
"""

from __future__ import annotations

from typing import Any

from pcapip.flows.state import HeaderSeen

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
V1_SIG = b"PROXY"


class _NotProxy:
    """Stand-in for a NOT_PROXY parse of bytes whose first byte rules a header out."""

    __slots__ = ()
    header = None
    length = 0
    need = 0
    experts: list = []
    tree = None
    reason = None
    codes: list = []

    @property
    def state(self) -> Any:
        from pcapip.dissect import ParseState

        return ParseState.NOT_PROXY


NOT_PROXY = _NotProxy()


def parse(data: bytes, *, base: int = 0, final: bool = False) -> Any:
    """parse_proxy, skipping the call when the first byte cannot start a header.

    ``final`` says no more bytes will come (a UDP datagram): a header that
    needs more is then malformed (``proxy.truncated``). No field tree is drawn:
    the flow keeps only the typed header, its rule and its length.
    """
    if not data or data[0] not in (0x50, 0x0D):
        return NOT_PROXY
    from pcapip.dissect import parse_proxy

    return parse_proxy(data, base_offset=base, final=final, tree=False)


def version_of(data: bytes) -> int:
    """1 or 2 when ``data`` starts like a v1/v2 header (even a short prefix), else 0."""
    if not data:
        return 0
    if V1_SIG.startswith(data[:5]):
        return 1
    if V2_SIG.startswith(data[:12]):
        return 2
    return 0


def seen(r: Any, stream: Any, start: int) -> HeaderSeen:
    """Keep what matters of a stream-start parse; ``start`` is its stream offset."""
    data = bytes(stream.prefix[start:])
    length = r.length or (r.header.length if r.header is not None and r.header.length else 0)
    frames = stream.frames_for(start, start + (length or len(data)))
    version = r.header.version if r.header is not None else version_of(data)
    return HeaderSeen(
        r.state.value, version, r.header, r.reason, tuple(r.codes), length, frames, len(frames)
    )


def seen_direct(r: Any, data: bytes, frame: int, capture: int) -> HeaderSeen:
    """Like ``seen`` for a header read from a single in-order first segment."""
    length = r.length or (r.header.length if r.header is not None and r.header.length else 0)
    version = r.header.version if r.header is not None else version_of(data)
    return HeaderSeen(
        r.state.value, version, r.header, r.reason, tuple(r.codes), length, [(capture, frame)], 1
    )


def seen_datagram(r: Any, frame: int, capture: int) -> HeaderSeen:
    version = r.header.version if r.header is not None else 2
    return HeaderSeen(
        r.state.value, version, r.header, r.reason, tuple(r.codes), r.length, [(capture, frame)], 1
    )


def client_fields(hs: HeaderSeen | None) -> tuple[str | None, int | None, str | None, int | None]:
    """(client ip, client port, proxy ip, proxy port) a receiver would take from ``hs``.

    Only a header that parsed OK gives any: a conforming receiver drops the
    connection on a malformed or unfinished header, so the addresses it may
    still spell out are shown in the field tree, never as the flow's client.
    """
    if hs is None or hs.state != "ok" or not carries_address(hs.header):
        return None, None, None, None
    h = hs.header
    return h.src_addr, h.src_port, h.dst_addr, h.dst_port


# warnings of a valid header that other findings already say (no_address, stacked)
_SAID = {"proxy.v2.unspec", "proxy.repeated"}


def oddities(hs: HeaderSeen, udp: bool) -> list[str]:
    """What is odd in a valid header (its warning-level expert codes, the transport it
    travels in), each said once in the words of the code catalogue."""
    from pcapip.dissect.codes import CODES
    from pcapip.dissect.fields import Severity
    from pcapip.dissect.proxy_model import transport_oddity

    out: list[str] = []
    for code in dict.fromkeys(hs.codes):
        info = CODES.get(code)
        if info is not None and info.severity == Severity.WARN and code not in _SAID:
            out.append(info.meaning)
    odd = transport_oddity(hs.header, udp)
    if odd is not None:
        out.append(odd[1])
    return out


def carries_address(h: Any) -> bool:
    """A header that names a client address: not LOCAL's, UNSPEC's or UNKNOWN's none, nor
    UNIX's socket paths (a receiver without that family falls back to the real endpoints,
    and a path is no IP address)."""
    return h is not None and h.src_addr is not None and h.family != "UNIX"


def malformed_finding(h: HeaderSeen, *, datagram: bool = False) -> tuple[str, str]:
    """(code, message) for a header that is not OK.

    ``datagram``: the header was read from a whole UDP datagram, which cannot
    continue, so a header cut short there is malformed (the sender wrote a short
    one), not incomplete at the end of the capture.
    """
    if "proxy.v2.tlv.crc32c_mismatch" in h.codes or (
        h.header is not None and getattr(h.header, "crc32c", None) == "bad"
    ):
        return "proxy.v2.crc32c_bad", h.reason or "CRC32C does not match the header"
    truncated = h.state == "malformed" and h.codes[:1] == ("proxy.truncated",)
    if truncated and datagram:
        code = "proxy.v1.malformed" if h.version == 1 else "proxy.v2.malformed"
        why = h.reason or "the header is cut short"
        return code, f"{why}, and the datagram ends there: a datagram cannot continue"
    if h.state == "need-more":
        return "proxy.incomplete", "the stream ends before the PROXY header does"
    if truncated:
        return "proxy.incomplete", h.reason or "data ends before the PROXY header does"
    code = "proxy.v1.malformed" if h.version == 1 else "proxy.v2.malformed"
    rule = h.reason or "the header breaks the specification"
    return code, rule


# dissector expert codes -> flow finding codes
_TOA_MALFORMED = {
    "toa.unknown_length",
    "toa.bad_version",
    "toa.truncated",
    "toa.vip_without_client",
    "toa.disagree",
    "toa.zero_client",
    "toa.unknown_layout",
}
_TOA_UNREACHABLE = {"toa.after_eol", "toa.after_broken"}


def toa_problems(res: Any) -> list[tuple[str, str]]:
    """Findings for one segment's TOA dissection: (code, message) pairs."""
    out: list[tuple[str, str]] = []
    for e in res.all_experts():
        if e.code in _TOA_UNREACHABLE:
            out.append(("toa.unreachable", e.message))
        elif e.code in _TOA_MALFORMED:
            out.append(("toa.malformed", e.message))
    return out


def hostport(ip: str | None, port: int | None) -> str:
    if ip is None:
        return "-"
    text = f"[{ip}]" if ":" in ip else ip
    return f"{text}:{port}" if port is not None else text


def _text(v: Any) -> str:
    """A TLV value for the ``tlvs`` column: bytes that are not printable UTF-8 as hex, text
    with non-printables escaped as the field tree shows them (``\\x00``, ``\\\\``), and the
    column's own separators percent-encoded."""
    from pcapip.dissect.fields import escape_text  # the dissectors load only when needed

    if isinstance(v, bytes | bytearray):
        try:
            s = bytes(v).decode("utf-8")
            if not s.isprintable():
                raise ValueError
        except ValueError:
            s = bytes(v).hex()
    else:
        s = str(v)
    s = escape_text(s)
    return s.replace("%", "%25").replace(";", "%3B").replace("=", "%3D")


_SKIP = {"noop", "crc32c", "ssl.client_cert"}


def tlv_text(header: Any) -> str:
    """The ``tlvs`` column: ``name=value;...`` of the decoded TLVs."""
    if header is None or not getattr(header, "tlvs", None):
        return ""
    parts: list[str] = []
    for t in header.tlvs:
        name = t.name
        if name == "crc32c":
            # (unchecked: a CRC32C TLV of a length other than 4, which is the finding)
            parts.append(f"crc32c={header.crc32c or 'unchecked'}")
            continue
        if name in _SKIP:
            continue
        if name == "ssl":
            v = t.value if isinstance(t.value, dict) else {}
            for k in ("client", "verify"):
                if k in v:
                    parts.append(f"ssl.{k}={_text(v[k])}")
            for c in t.children:
                if c.name not in _SKIP:
                    parts.append(f"{c.name}={_text(c.value)}")
            continue
        if name in ("custom", "experimental", "unknown"):
            name = f"0x{t.type:02x}"
        parts.append(f"{name}={_text(t.value)}")
    return ";".join(parts)
