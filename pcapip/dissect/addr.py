"""Address bytes to text and typed values, the same way in every dissector.

An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) is the IPv4 client for every
consumer of pcapip (the decoder stores IPv4 that way too), so text forms
unmap it; the typed value keeps what was on the wire.
"""

from __future__ import annotations

import ipaddress
import socket

V4_MAPPED_PREFIX = b"\0" * 10 + b"\xff\xff"


def ipv4_text(b: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, b)


def ipv6_text(b: bytes) -> str:
    """IPv6 text; an IPv4-mapped address becomes plain dotted IPv4."""
    if b[:12] == V4_MAPPED_PREFIX:
        return socket.inet_ntop(socket.AF_INET, b[12:16])
    return socket.inet_ntop(socket.AF_INET6, b)


def is_v4_mapped(b: bytes) -> bool:
    return len(b) == 16 and b[:12] == V4_MAPPED_PREFIX


def ip_value(b: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Typed value for a Field: the address exactly as on the wire."""
    return ipaddress.IPv4Address(b) if len(b) == 4 else ipaddress.IPv6Address(b)


def mac_text(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)
