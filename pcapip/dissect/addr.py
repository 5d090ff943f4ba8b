"""Address bytes to text and typed values, the same way in every dissector.

An address is written as the header or option carries it: an IPv4-mapped
IPv6 address stays ``::ffff:a.b.c.d`` (what inet_ntop, Python's ipaddress and
nginx's ``$proxy_protocol_addr`` print), so a TCP6 or INET6 header never
reads as if it carried IPv4. The experts say when an address is mapped.
"""

from __future__ import annotations

import ipaddress

# what the socket module re-exports them from: importing socket itself (its enums,
# selectors) costs a 10-packet ``pcapip analyze`` ~3 ms
from _socket import AF_INET, AF_INET6, inet_ntop

V4_MAPPED_PREFIX = b"\0" * 10 + b"\xff\xff"


def ipv4_text(b: bytes) -> str:
    return inet_ntop(AF_INET, b)


def ipv6_text(b: bytes) -> str:
    """IPv6 text as carried (RFC 5952; an IPv4-mapped address is ``::ffff:a.b.c.d``)."""
    return inet_ntop(AF_INET6, b)


def is_v4_mapped(b: bytes) -> bool:
    return len(b) == 16 and b[:12] == V4_MAPPED_PREFIX


def ip_value(b: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Typed value for a Field: the address exactly as on the wire."""
    return ipaddress.IPv4Address(b) if len(b) == 4 else ipaddress.IPv6Address(b)


def mac_text(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)
