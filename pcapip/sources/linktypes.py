"""Link-layer header types (LINKTYPE_* / DLT_* values) pcapip knows by name.

The table lives with the sources because a source is the first place a link
type is seen: it names unsupported link types in its warnings, and the decoder
imports the same set so the two never disagree about what is supported.
"""

from __future__ import annotations

LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in the capturing host's byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_DLT12 = 12  # DLT_RAW on most BSDs and Linux headers (raw IPv4/IPv6)
LINKTYPE_RAW_DLT14 = 14  # DLT_RAW on OpenBSD
LINKTYPE_RAW = 101  # raw IPv4/IPv6, the version nibble tells which
LINKTYPE_LOOP = 108  # OpenBSD loopback: address family in network byte order (in theory)
LINKTYPE_LINUX_SLL = 113  # Linux "cooked" capture v1 (tcpdump -i any)
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276  # Linux "cooked" capture v2
#: not a link type: the frames of pcapng records Wireshark numbers as frames though they hold
#: no packet (custom blocks, systemd journal entries); pcapip numbers them too, so a packet's
#: number is Wireshark's frame number
LT_RECORD = 0xFFFF

LINKTYPE_NAMES: dict[int, str] = {
    LT_RECORD: "pcapng record (no packet)",
    LINKTYPE_NULL: "NULL (BSD loopback)",
    LINKTYPE_ETHERNET: "Ethernet",
    6: "IEEE 802.5 Token Ring",
    9: "PPP",
    10: "FDDI",
    LINKTYPE_RAW_DLT12: "raw IP (DLT 12)",
    LINKTYPE_RAW_DLT14: "raw IP (DLT 14)",
    50: "PPP in HDLC framing",
    LINKTYPE_RAW: "raw IP",
    104: "Cisco HDLC",
    105: "IEEE 802.11",
    LINKTYPE_LOOP: "OpenBSD loopback",
    LINKTYPE_LINUX_SLL: "Linux cooked v1 (SLL)",
    119: "Prism 802.11",
    127: "802.11 radiotap",
    147: "USER0",
    189: "USB Linux",
    195: "IEEE 802.15.4",
    LINKTYPE_IPV4: "raw IPv4",
    LINKTYPE_IPV6: "raw IPv6",
    253: "netlink",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2 (SLL2)",
}

# Link types the decoder understands down to IP.
SUPPORTED_LINKTYPES: frozenset[int] = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW_DLT12,
        LINKTYPE_RAW_DLT14,
        LINKTYPE_RAW,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL2,
    }
)


def linktype_name(linktype: int) -> str:
    """Human name of a link type, e.g. ``"Ethernet"`` or ``"link type 147 (USER0)"``."""
    name = LINKTYPE_NAMES.get(linktype)
    if linktype in SUPPORTED_LINKTYPES and name:
        return name
    return f"link type {linktype} ({name})" if name else f"link type {linktype}"
