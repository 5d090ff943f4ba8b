"""Quick answers for the common, clean cases of PROXY headers and TOA options.

The dissectors build a full field tree and check every rule, which costs tens
of microseconds; a capture with a hundred thousand connections would spend
seconds there for headers that are all alike. These functions accept only the
plain, unambiguous shapes (a v1 TCP4 line, a v2 header without TLVs, a single
well-placed IPv4 TOA) and return None for anything else, which then goes to
the dissectors. Tests check that whenever a quick answer is given, the
dissector gives the same one.
"""

from __future__ import annotations

import re
import socket
import struct
from typing import Any

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
_OCTET = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = rb"(" + _OCTET + rb"(?:\." + _OCTET + rb"){3})"
_PORT = rb"(0|[1-9][0-9]{0,4})"
_V1_TCP4 = re.compile(rb"PROXY TCP4 " + _V4 + b" " + _V4 + b" " + _PORT + b" " + _PORT + b"\r\n")
_V1_MAX = 107


def proxy(data: bytes) -> Any | None:
    """A ProxyParse for a clean header at the start of ``data``, else None."""
    from pcapip.dissect.proxy_model import ParseState, ProxyHeader, ProxyParse

    if data[:6] == b"PROXY ":
        m = _V1_TCP4.match(data, 0, _V1_MAX)
        if m is None:
            return None
        sp, dp = int(m.group(3)), int(m.group(4))
        if sp > 65535 or dp > 65535:
            return None
        n = m.end()
        h = ProxyHeader(
            1, "PROXY", "TCP4", "STREAM", m.group(1).decode(), m.group(2).decode(), sp, dp, n
        )
        return ProxyParse(ParseState.OK, header=h, length=n)
    if data[:12] != V2_SIG or len(data) < 16:
        return None
    vc, fam = data[12], data[13]
    (ln,) = struct.unpack_from("!H", data, 14)
    if len(data) < 16 + ln:
        return None
    if vc == 0x20 and fam == 0x00 and ln == 0:
        h = ProxyHeader(2, "LOCAL", "UNSPEC", "UNSPEC", length=16)
        return ProxyParse(ParseState.OK, header=h, length=16)
    if vc != 0x21:
        return None
    if fam in (0x11, 0x12) and ln == 12:
        src = socket.inet_ntop(socket.AF_INET, data[16:20])
        dst = socket.inet_ntop(socket.AF_INET, data[20:24])
        sp, dp = struct.unpack_from("!HH", data, 24)
        family = "INET"
    elif fam in (0x21, 0x22) and ln == 36:
        a, b = data[16:32], data[32:48]
        if a[:12] == b"\0" * 10 + b"\xff\xff" or b[:12] == b"\0" * 10 + b"\xff\xff":
            return None
        src = socket.inet_ntop(socket.AF_INET6, a)
        dst = socket.inet_ntop(socket.AF_INET6, b)
        sp, dp = struct.unpack_from("!HH", data, 48)
        family = "INET6"
    else:
        return None
    h = ProxyHeader(
        2, "PROXY", family, "STREAM" if fam & 0x0F == 1 else "DGRAM", src, dst, sp, dp, 16 + ln
    )
    return ProxyParse(ParseState.OK, header=h, length=16 + ln)


_EXIDS16 = {0xF989}
_EXIDS32 = {0xE2D4C3D9}


def toa(options: bytes, registry: Any) -> tuple[str, int, int, int, str] | None:
    """(client ip, client port, kind, length, variant name) for one clean IPv4 TOA, else None.

    Clean: the option walk completes (EOL followed only by zeros), exactly one
    option has a TOA kind, its (kind, length) is a port+IPv4 client variant,
    it is not an RFC 6994 experiment id, and the client is not 0.0.0.0:0.
    """
    from pcapip.dissect.toa_registry import L_PORT_V4

    kinds = registry.kinds
    n = len(options)
    i = 0
    found = -1
    while i < n:
        k = options[i]
        if k == 0:
            if options.count(0, i) != n - i:
                return None
            break
        if k == 1:
            i += 1
            continue
        if i + 1 >= n:
            return None
        ln = options[i + 1]
        if ln < 2 or i + ln > n:
            return None
        if k in kinds:
            if found >= 0:
                return None
            found = i
        i += ln
    if found < 0:
        return None
    k, ln = options[found], options[found + 1]
    v = registry.lookup(k, ln)
    if v is None or v.layout != L_PORT_V4 or v.carries != "client" or ln != 8:
        return None
    port = (options[found + 2] << 8) | options[found + 3]
    raw = options[found + 4 : found + 8]
    if k in (253, 254) and (
        port in _EXIDS16 or int.from_bytes(options[found + 2 : found + 6], "big") in _EXIDS32
    ):
        return None
    if port == 0 or raw == b"\0\0\0\0":
        return None
    return socket.inet_ntop(socket.AF_INET, raw), port, k, ln, v.name
