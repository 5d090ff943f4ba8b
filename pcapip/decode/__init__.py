"""Columnar decode of raw frames: link layer, IPv4/IPv6, TCP/UDP.

``decode(batch)`` turns a FrameBatch into Packets columns (see columns.py);
per-packet Python work is left to later stages for the few packets that need
it (TCP options that may hold a TOA, first payload bytes, UDP datagrams).
"""

from __future__ import annotations

from .addresses import ip_to_str, ips_to_str
from .columns import (
    OPT_AFTER_EOL,
    OPT_MSS,
    OPT_SACK,
    OPT_TIMESTAMP,
    OPT_TOA_CANDIDATE,
    OPT_WALK_BROKEN,
    ST_BAD_HEADER,
    ST_FRAGMENT,
    ST_NO_L4,
    ST_NOT_IP,
    ST_NOT_TCP_UDP,
    ST_PAYLOAD_CUT,
    ST_TRUNCATED,
    ST_TUNNEL_DEEP,
    ST_UNKNOWN_LINK,
    STATUS_NAMES,
    Packets,
)
from .decoder import DEFAULT_TOA_KINDS, decode, toa_mask, warm_compiled
from .status import in_flows, status_counts

__all__ = [
    "DEFAULT_TOA_KINDS",
    "OPT_AFTER_EOL",
    "OPT_MSS",
    "OPT_SACK",
    "OPT_TIMESTAMP",
    "OPT_TOA_CANDIDATE",
    "OPT_WALK_BROKEN",
    "ST_BAD_HEADER",
    "ST_FRAGMENT",
    "ST_NOT_IP",
    "ST_NOT_TCP_UDP",
    "ST_NO_L4",
    "ST_PAYLOAD_CUT",
    "ST_TRUNCATED",
    "ST_TUNNEL_DEEP",
    "ST_UNKNOWN_LINK",
    "STATUS_NAMES",
    "Packets",
    "decode",
    "in_flows",
    "ip_to_str",
    "ips_to_str",
    "status_counts",
    "toa_mask",
    "warm_compiled",
]
