"""Every expert code the dissectors emit, with its fixed severity and meaning.

Codes are stable identifiers: findings, filters, tests and the Wireshark
plugin key on them, so a code is never renamed or reused for another rule.
Messages attached to a particular expert may say more (the offending value,
the byte offset); the one-line meaning here is what the findings catalogue
shows next to the code.

Families: ``proxy.*`` (detection and completeness), ``proxy.v1.*`` (text
header), ``proxy.v2.*`` (binary header), ``proxy.v2.tlv.*`` (its TLVs),
``toa.*`` (TCP option addresses and the option walk), ``frame.*``/``ip.*``/
``tcp.*``/``udp.*`` (the layers ``pcapip show`` dissects) and ``dissect.*``.
"""

from __future__ import annotations

from typing import NamedTuple

from pcapip.dissect.fields import Expert, Severity


class CodeInfo(NamedTuple):
    severity: Severity
    meaning: str


_E, _W, _N, _C = Severity.ERROR, Severity.WARN, Severity.NOTE, Severity.CHAT

CODES: dict[str, CodeInfo] = {
    # --- detection / completeness -------------------------------------------------------------
    "proxy.incomplete": CodeInfo(_W, "PROXY header incomplete: more bytes are needed to finish it"),
    "proxy.truncated": CodeInfo(_E, "data ended (datagram or stream end) before the PROXY header did"),
    "proxy.transport_mismatch": CodeInfo(
        _W, "the header's transport (STREAM/DGRAM) differs from the packet's (TCP/UDP)"
    ),
    "proxy.repeated": CodeInfo(
        _W, "a second PROXY header follows the first; the receiver treats it as application data"
    ),
    "proxy.v1.over_udp": CodeInfo(_W, "a PROXY v1 header in a UDP datagram: v1 only describes TCP"),
    # --- version 1 ----------------------------------------------------------------------------
    "proxy.v1.bad_separator": CodeInfo(
        _E, "fields must be separated by exactly one space (0x20)"
    ),
    "proxy.v1.bad_protocol": CodeInfo(_E, "protocol is not TCP4, TCP6 or UNKNOWN"),
    "proxy.v1.too_long": CodeInfo(_E, "no CRLF within the first 107 bytes"),
    "proxy.v1.lone_cr": CodeInfo(_E, "line ends with a CR not followed by LF"),
    "proxy.v1.lone_lf": CodeInfo(_E, "line ends with an LF not preceded by CR"),
    "proxy.v1.missing_field": CodeInfo(_E, "line ends before all address and port fields"),
    "proxy.v1.extra_field": CodeInfo(_E, "unexpected bytes after the destination port"),
    "proxy.v1.bad_ipv4": CodeInfo(_E, "IPv4 address is not four dot-separated decimal numbers"),
    "proxy.v1.ipv4_leading_zero": CodeInfo(
        _E, "IPv4 octet has a leading zero (could be read as octal)"
    ),
    "proxy.v1.ipv4_octet_range": CodeInfo(_E, "IPv4 octet greater than 255"),
    "proxy.v1.bad_ipv6": CodeInfo(_E, "IPv6 address is not valid hex groups separated by colons"),
    "proxy.v1.ipv6_double_colon": CodeInfo(_E, "IPv6 address has more than one '::'"),
    "proxy.v1.ipv6_group_too_long": CodeInfo(_E, "IPv6 group has more than 4 hex digits"),
    "proxy.v1.ipv6_bit_count": CodeInfo(_E, "IPv6 address does not decode to exactly 128 bits"),
    "proxy.v1.ipv6_dotted": CodeInfo(
        _W, "IPv6 address ends in dotted IPv4 (spec wants hex groups; inet_pton receivers accept it)"
    ),
    "proxy.v1.family_mismatch": CodeInfo(
        _E, "address family of an address does not match TCP4/TCP6"
    ),
    "proxy.v1.bad_port": CodeInfo(_E, "port is not a decimal number"),
    "proxy.v1.port_leading_zero": CodeInfo(_E, "port has a leading zero"),
    "proxy.v1.port_range": CodeInfo(_E, "port greater than 65535"),
    "proxy.v1.unknown": CodeInfo(
        _N, "UNKNOWN protocol: receivers use the real connection endpoints"
    ),
    # --- version 2 ----------------------------------------------------------------------------
    "proxy.v2.bad_version": CodeInfo(_E, "version nibble after the v2 signature is not 2"),
    "proxy.v2.bad_command": CodeInfo(_E, "command is neither LOCAL (0) nor PROXY (1)"),
    "proxy.v2.bad_family": CodeInfo(
        _E, "address family nibble is not UNSPEC, INET, INET6 or UNIX"
    ),
    "proxy.v2.bad_transport": CodeInfo(_E, "transport nibble is not UNSPEC, STREAM or DGRAM"),
    "proxy.v2.bad_family_protocol": CodeInfo(
        _E, "family/transport byte is not one of 0x00 0x11 0x12 0x21 0x22 0x31 0x32"
    ),
    "proxy.v2.addr_too_short": CodeInfo(
        _E, "header length is smaller than the address block the family needs (12/36/216)"
    ),
    "proxy.v2.local_short_addr": CodeInfo(
        _N, "LOCAL header shorter than its family's address block (addresses ignored anyway)"
    ),
    "proxy.v2.local": CodeInfo(
        _N, "LOCAL command: receivers use the real connection endpoints (health check)"
    ),
    "proxy.v2.unspec": CodeInfo(
        _W, "PROXY command with UNSPEC family: no client address is conveyed"
    ),
    "proxy.v2.unix_padding": CodeInfo(_W, "UNIX address has non-NUL bytes after its terminating NUL"),
    "proxy.v2.unix_unterminated": CodeInfo(_W, "UNIX address fills all 108 bytes with no NUL"),
    # --- version 2 TLVs -----------------------------------------------------------------------
    "proxy.v2.tlv.overrun": CodeInfo(_E, "TLV length runs past the end of the header"),
    "proxy.v2.tlv.stray_bytes": CodeInfo(
        _E, "1 or 2 bytes left at the end of the header, shorter than a TLV header"
    ),
    "proxy.v2.tlv.crc32c_length": CodeInfo(_E, "CRC32C TLV length is not 4"),
    "proxy.v2.tlv.crc32c_mismatch": CodeInfo(
        _E, "CRC32C does not match the header: receivers must drop the connection"
    ),
    "proxy.v2.tlv.crc32c_duplicate": CodeInfo(_W, "more than one CRC32C TLV; only the first is checked"),
    "proxy.v2.tlv.unique_id_too_long": CodeInfo(_E, "UNIQUE_ID longer than 128 bytes"),
    "proxy.v2.tlv.bad_text": CodeInfo(_W, "TLV that should hold text is not valid UTF-8"),
    "proxy.v2.tlv.ssl_too_short": CodeInfo(_E, "SSL TLV shorter than its 5-byte client+verify part"),
    "proxy.v2.tlv.ssl_orphan": CodeInfo(
        _E, "bytes at the end of the SSL TLV shorter than a sub-TLV header"
    ),
    "proxy.v2.tlv.ssl_sub_overrun": CodeInfo(_E, "SSL sub-TLV runs past the end of the SSL TLV"),
    "proxy.v2.tlv.ssl_unknown_sub": CodeInfo(_W, "SSL sub-TLV type outside 0x21-0x28"),
    "proxy.v2.tlv.ssl_client_bits": CodeInfo(_W, "SSL client field has undefined bits set"),
    "proxy.v2.tlv.ssl_version_missing": CodeInfo(
        _W, "SSL client flag set but no SSL version sub-TLV"
    ),
    "proxy.v2.tlv.vendor_layout": CodeInfo(
        _W, "vendor TLV (AWS 0xEA, Azure 0xEE, GCP 0xE0) does not have its vendor's layout"
    ),
    "proxy.v2.tlv.unknown_type": CodeInfo(_N, "TLV type not registered by the specification"),
    "proxy.v2.tlv.future_type": CodeInfo(_W, "TLV type in the reserved future range 0xF8-0xFF"),
    # --- TOA ----------------------------------------------------------------------------------
    "toa.unknown_length": CodeInfo(_E, "TOA kind with a length no known variant has"),
    "toa.unknown_layout": CodeInfo(
        _W, "kind 253/254 option of no TOA length, too short for an RFC 6994 experiment id"
    ),
    "toa.bad_version": CodeInfo(_E, "kind 28 version byte disagrees with the option length"),
    "toa.after_eol": CodeInfo(_E, "TOA after EOL: a receiving module's walk never reaches it"),
    "toa.after_broken": CodeInfo(
        _E, "TOA after an option that aborts the walk: a receiving module never reaches it"
    ),
    "toa.walk_broken": CodeInfo(
        _W, "option walk aborts here (length below 2 or past the header)"
    ),
    "toa.nonzero_after_eol": CodeInfo(_N, "non-zero bytes after EOL (ignored by receivers)"),
    "toa.disagree": CodeInfo(_E, "two TOAs in one segment carry different client addresses"),
    "toa.duplicate": CodeInfo(_N, "the same TOA appears more than once in one segment"),
    "toa.vip_without_client": CodeInfo(_E, "kind 250 (VIP) without a kind 254 client option before it"),
    "toa.exp_ambiguous": CodeInfo(
        _W, "kind 253/254 option that is both a TOA length and a known RFC 6994 experiment"
    ),
    "toa.v4_mapped": CodeInfo(_N, "IPv4-mapped IPv6 client address (an IPv4 client, shown as carried)"),
    "toa.cross_family": CodeInfo(
        _N, "TOA address family differs from the packet's IP version (NAT64-style)"
    ),
    "toa.zero_client": CodeInfo(_W, "TOA carries an unspecified client address or port 0"),
    "toa.truncated": CodeInfo(_E, "TOA option runs past the end of the option bytes"),
    # --- layers shown by pcapip show ----------------------------------------------------------
    "frame.truncated": CodeInfo(_W, "captured bytes end before this header or payload does"),
    "frame.trailer": CodeInfo(_N, "bytes after the end of the IP datagram"),
    "frame.unknown_link": CodeInfo(_N, "link type not dissected"),
    "frame.not_ip": CodeInfo(_N, "link payload is not IPv4 or IPv6"),
    "frame.tunnel_depth": CodeInfo(
        _W, "encapsulations nested deeper than the depth limit: the inner ones are not opened"
    ),
    "ip.bad_version": CodeInfo(_E, "IP version field does not match the link-layer type"),
    "ip.bad_ihl": CodeInfo(_E, "IPv4 header length below 20 bytes"),
    "ip.bad_total_length": CodeInfo(_E, "IP length field smaller than the IP header"),
    "ip.zero_length": CodeInfo(
        _N, "IPv4 total length 0 (segmentation offload): the captured length is used"
    ),
    "ip.checksum_bad": CodeInfo(_W, "IPv4 header checksum does not match"),
    "ip.fragment": CodeInfo(_N, "IP fragment: transport header not dissected"),
    "ip.ext_truncated": CodeInfo(_W, "IPv6 extension header runs past the captured bytes"),
    "tcp.bad_offset": CodeInfo(_E, "TCP data offset below 5 (20 bytes)"),
    "udp.bad_length": CodeInfo(_E, "UDP length field below 8 or past the IP payload"),
    # --- dissector itself ---------------------------------------------------------------------
    "dissect.internal_error": CodeInfo(_E, "the dissector failed on these bytes (a bug in pcapip)"),
}


def expert(code: str, offset: int, length: int, message: str | None = None) -> Expert:
    """An Expert with the severity this table fixes for ``code``."""
    info = CODES[code]
    return Expert(info.severity, code, message or info.meaning, offset, length)
