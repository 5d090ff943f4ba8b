"""Field registrations of the PROXY protocol tree: v1, v2, its TLVs and SSL sub-TLVs.

Filter names and types follow Wireshark's ``proxy`` dissector where it has the field
(``tests/test_dissect_hf.py`` checks the types against ``tshark -G fields``); the TLVs
Wireshark does not decode (vendors', NOOP, UNIQUE_ID, CRC32C ...) are pcapip's names
under ``proxy.v2.tlv.``.
"""

from __future__ import annotations

from pcapip.dissect.fields import FieldReg as R

COMMANDS: dict[int, str] = {0: "LOCAL", 1: "PROXY"}
FAMILY_LABELS: dict[int, str] = {0: "AF_UNSPEC", 1: "AF_INET", 2: "AF_INET6", 3: "AF_UNIX"}
TRANSPORTS: dict[int, str] = {0: "UNSPEC", 1: "STREAM", 2: "DGRAM"}
#: the seven valid family/transport bytes (section 2.2)
FAMILY_PROTOCOLS: dict[int, str] = {
    0x00: "UNSPEC",
    0x11: "TCP over IPv4",
    0x12: "UDP over IPv4",
    0x21: "TCP over IPv6",
    0x22: "UDP over IPv6",
    0x31: "UNIX stream",
    0x32: "UNIX datagram",
}
#: TLV type -> what the tree calls it (registered types, then the cloud vendors')
TLV_TYPES: dict[int, str] = {0x01: "ALPN", 0x02: "Authority", 0x03: "CRC32C", 0x04: "NOOP",
                             0x05: "Unique ID", 0x20: "SSL", 0x30: "Network namespace",
                             0xE0: "GCP", 0xEA: "AWS", 0xEE: "Azure"}

PROXY_FIELDS: tuple[R, ...] = (
    R("proxy", "PROXY Protocol", "protocol"),
    R("proxy.version", "Version", "uint8"),
    R("proxy.src.ipv4", "Source Address", "ipv4"),
    R("proxy.dst.ipv4", "Destination Address", "ipv4"),
    R("proxy.src.ipv6", "Source Address", "ipv6"),
    R("proxy.dst.ipv6", "Destination Address", "ipv6"),
    R("proxy.srcport", "Source Port", "uint16"),
    R("proxy.dstport", "Destination Port", "uint16"),
    R("proxy.v1.magic", "PROXY v1 magic", "none"),
    R("proxy.v1.proto", "Protocol", "string"),
    R("proxy.v1.unknown", "Unknown data", "string"),
    R("proxy.v2.magic", "Magic", "bytes"),
    R("proxy.v2.version", "Version", "uint8", mask=0xF0),
    R("proxy.v2.cmd", "Command", "uint8", mask=0x0F, strings=COMMANDS),
    R("proxy.v2.addr_family_protocol", "Address Family Protocol", "uint8",
      strings=FAMILY_PROTOCOLS),
    R("proxy.v2.addr_family", "Address Family", "uint8", mask=0xF0, strings=FAMILY_LABELS),
    R("proxy.v2.protocol", "Protocol", "uint8", mask=0x0F, strings=TRANSPORTS),
    R("proxy.v2.length", "Length", "uint16"),
    R("proxy.v2.src.unix", "Source Address", "string"),
    R("proxy.v2.dst.unix", "Destination Address", "string"),
    R("proxy.v2.unknown", "Unparsed", "bytes", also=("Stray bytes", "Orphan bytes")),
)

TLV_FIELDS: tuple[R, ...] = (
    R("proxy.v2.tlv", "TLV", "none", also=("SSL sub-TLV",)),
    R("proxy.v2.tlv.type", "Type", "uint8", strings=TLV_TYPES),
    R("proxy.v2.tlv.length", "Length", "uint16"),
    R("proxy.v2.tlv.value", "Value", "bytes", also=("Unknown sub-TLV",)),
    R("proxy.v2.tlv.alpn", "ALPN", "string"),
    R("proxy.v2.tlv.authority", "Authority", "string"),
    R("proxy.v2.tlv.crc32c", "CRC32C", "uint32"),
    R("proxy.v2.tlv.crc32c.status", "CRC32C status", "string"),  # "ok" / "bad"
    R("proxy.v2.tlv.crc32c.computed", "Computed CRC32C", "uint32"),
    R("proxy.v2.tlv.noop", "NOOP", "bytes"),
    R("proxy.v2.tlv.unique_id", "Unique ID", "bytes"),
    R("proxy.v2.tlv.netns", "Network namespace", "string"),
    R("proxy.v2.tlv.ssl.client", "Client", "uint8"),
    R("proxy.v2.tlv.ssl.client.ssl", "Client connected over SSL/TLS", "bool"),
    R("proxy.v2.tlv.ssl.client.cert_conn", "Certificate on this connection", "bool"),
    R("proxy.v2.tlv.ssl.client.cert_sess", "Certificate in this session", "bool"),
    R("proxy.v2.tlv.ssl.verify", "Verify", "uint32"),
    R("proxy.v2.tlv.ssl.version", "SSL version", "string"),
    R("proxy.v2.tlv.ssl.cn", "Client certificate CN", "string"),
    R("proxy.v2.tlv.ssl.cipher", "Cipher", "string"),
    R("proxy.v2.tlv.ssl.sig_alg", "Certificate signature algorithm", "string"),
    R("proxy.v2.tlv.ssl.key_alg", "Certificate key algorithm", "string"),
    R("proxy.v2.tlv.ssl.group", "Key exchange group", "string"),
    R("proxy.v2.tlv.ssl.sig_scheme", "Signature scheme", "string"),
    R("proxy.v2.tlv.ssl.client_cert", "Client certificate (DER)", "bytes"),
    R("proxy.v2.tlv.aws.subtype", "AWS subtype", "uint8"),
    R("proxy.v2.tlv.aws.vpce_id", "VPC endpoint id", "string"),
    R("proxy.v2.tlv.azure.subtype", "Azure subtype", "uint8"),
    R("proxy.v2.tlv.azure.link_id", "Private Link id", "uint32"),
    R("proxy.v2.tlv.gcp.psc_id", "PSC connection id", "uint64"),
    R("proxy.v2.tlv.custom", "Value", "bytes"),
    R("proxy.v2.tlv.experimental", "Value", "bytes"),
)
