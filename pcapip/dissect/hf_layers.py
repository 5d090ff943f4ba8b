"""Field registrations of the layers ``pcapip show`` draws: frame, link, IP, tunnels, TCP, UDP,
TCP options.

Filter names, labels and types are Wireshark's where Wireshark has the field
(``tests/test_dissect_hf.py`` checks the types against ``tshark -G fields``); the value
strings are the ones the trees print (``Protocol: TCP (6)``).
"""

from __future__ import annotations

from pcapip.dissect.fields import FieldReg as R

ETHERTYPES: dict[int, str] = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8100: "802.1Q",
                              0x88A8: "802.1ad", 0x88CC: "LLDP",
                              0x8847: "MPLS label switched packet", 0x8864: "PPPoE Session",
                              0x6558: "Transparent Ethernet bridging", 0x88BE: "ERSPAN",
                              0x22EB: "ERSPAN III"}
SLL_PKTTYPES: dict[int, str] = {0: "Unicast to us", 1: "Broadcast", 2: "Multicast",
                                3: "Unicast to another host", 4: "Sent by us"}
IP_PROTOCOLS: dict[int, str] = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6", 4: "IPIP", 41: "IPv6",
                                47: "Generic Routing Encapsulation"}
PPP_PROTOCOLS: dict[int, str] = {0x0021: "Internet Protocol version 4",
                                 0x0057: "Internet Protocol version 6"}
#: TCP option kind -> (filter name under tcp.options., what Wireshark calls it)
TCP_OPTIONS: dict[int, tuple[str, str]] = {
    0: ("eol", "End of Option List (EOL)"),
    1: ("nop", "No-Operation (NOP)"),
    2: ("mss", "Maximum segment size"),
    3: ("wscale", "Window scale"),
    4: ("sack_perm", "SACK permitted"),
    5: ("sack", "SACK"),
    8: ("timestamp", "Timestamps"),
    19: ("md5", "TCP MD5 signature"),
    28: ("user_to", "User Timeout"),
    29: ("ao", "TCP AO"),
    30: ("mptcp", "Multipath TCP"),
    34: ("tfo", "TCP Fast Open"),
    253: ("experimental", "RFC3692-style Experiment 1"),
    254: ("experimental", "RFC3692-style Experiment 2"),
}
# Registered RFC 6994 experiment ids (IANA "TCP/UDP Experimental Option Experiment Identifiers";
# the names Wireshark 4.0 gives them). SMC-R's id is 32 bits as IANA lists it (Wireshark reads
# its first 16 bits, 0xE2D4).
EXPERIMENT_IDS: dict[int, str] = {
    0x00AC: "TCP ACK Rate Request",
    0x0348: "Host ID",
    0x0A0D: "Autonomous System Compensation",
    0x0CA0: "Capability Option",
    0x0ED0: "Extended Data Offset",
    0x454E: "Encryption Negotiation (TCP-ENO)",
    0x5323: "Service Number",
    0x75EC: "Timestamp Interval",
    0xACC0: "Accurate ECN - Order 0",
    0xACC1: "Accurate ECN - Order 1",
    0xACCE: "Accurate ECN",
    0xF989: "TCP Fast Open (RFC 7413)",
    0xF990: "Low Latency",
    0xE2D4C3D9: "SMC-R (RFC 7609)",
}
_OPTION_KINDS = {k: label for k, (_, label) in TCP_OPTIONS.items()}

#: (name under ipv6., what the tree calls it) of the IPv6 extension headers walked over
IPV6_EXTENSIONS: dict[int, tuple[str, str]] = {
    0: ("hopopts", "Hop-by-Hop Options"), 43: ("routing", "Routing"),
    60: ("dstopts", "Destination Options"), 135: ("mipv6", "Mobility"),
    139: ("hip", "Host Identity Protocol"), 140: ("shim6", "Shim6"),
    51: ("ah", "Authentication Header"),
}


def _vlan(proto: str, label: str) -> tuple[R, ...]:
    return (
        R(proto, label, "protocol"),
        R(f"{proto}.priority", "Priority", "uint16"),
        R(f"{proto}.dei", "DEI", "uint16"),
        R(f"{proto}.id", "ID", "uint16"),
        R(f"{proto}.etype", "Type", "uint16", strings=ETHERTYPES),
    )


def _ipv6_ext(short: str, label: str) -> tuple[R, ...]:
    return (R(f"ipv6.{short}", f"IPv6 {label}", "protocol"),
            R(f"ipv6.{short}.nxt", "Next Header", "uint8"),
            R(f"ipv6.{short}.len", "Length", "uint8"))


_TCP_FLAGS = (("ae", "Accurate ECN"), ("cwr", "CWR"), ("ece", "ECN-Echo"), ("urg", "Urgent"),
              ("ack", "Acknowledgment"), ("push", "Push"), ("reset", "Reset"), ("syn", "Syn"),
              ("fin", "Fin"))

LINK_FIELDS: tuple[R, ...] = (
    R("frame", "Frame", "protocol"),
    R("frame.cap_len", "Capture Length", "uint32"),
    R("frame.linktype", "Link type", "uint32"),
    R("frame.trailer", "Trailer", "bytes"),
    R("eth", "Ethernet II", "protocol"),
    R("eth.dst", "Destination", "ether"),
    R("eth.src", "Source", "ether"),
    R("eth.len", "Length", "uint16"),
    R("eth.type", "Type", "uint16", strings=ETHERTYPES),
    R("eth.padding", "Padding", "bytes"),
    R("eth.trailer", "Trailer", "bytes"),
    R("sll", "Linux cooked capture v1", "protocol", also=("Linux cooked capture v2",)),
    R("sll.pkttype", "Packet type", "uint16", strings=SLL_PKTTYPES),
    R("sll.hatype", "Link-layer address type", "uint16"),
    R("sll.halen", "Link-layer address length", "uint16"),
    R("sll.etype", "Protocol", "uint16", strings=ETHERTYPES),
    R("sll.reserved", "Reserved", "uint16"),
    R("sll.ifindex", "Interface index", "uint32"),
    R("sll.src.eth", "Source", "ether"),
    R("sll.unused", "Unused", "bytes"),
    R("sll.src.other", "Source", "bytes"),
    R("null", "Null/Loopback", "protocol"),
    R("null.family", "Family", "uint32"),
    *_vlan("vlan", "802.1Q Virtual LAN"),
    *_vlan("ieee8021ad", "IEEE 802.1ad"),
)

IP_FIELDS: tuple[R, ...] = (
    R("ip", "Internet Protocol Version 4", "protocol"),
    R("ip.version", "Version", "uint8", mask=0xF0),
    R("ip.hdr_len", "Header Length", "uint8", mask=0x0F),
    R("ip.dsfield", "Differentiated Services Field", "uint8"),
    R("ip.dsfield.dscp", "DSCP", "uint8"),
    R("ip.dsfield.ecn", "ECN", "uint8"),
    R("ip.len", "Total Length", "uint16"),
    R("ip.id", "Identification", "uint16"),
    R("ip.flags", "Flags", "uint8"),
    R("ip.flags.rb", "Reserved bit", "bool"),
    R("ip.flags.df", "Don't fragment", "bool"),
    R("ip.flags.mf", "More fragments", "bool"),
    R("ip.frag_offset", "Fragment Offset", "uint16"),
    R("ip.ttl", "Time to Live", "uint8"),
    R("ip.proto", "Protocol", "uint8", strings=IP_PROTOCOLS),
    R("ip.checksum", "Header Checksum", "uint16"),
    R("ip.checksum.status", "Header checksum status", "string"),  # "good" / "bad"
    R("ip.src", "Source Address", "ipv4"),
    R("ip.dst", "Destination Address", "ipv4"),
    R("ip.options", "Options", "bytes"),
    R("ipv6", "Internet Protocol Version 6", "protocol"),
    R("ipv6.version", "Version", "uint8", mask=0xF0),
    R("ipv6.tclass", "Traffic Class", "uint32"),
    R("ipv6.flow", "Flow Label", "uint24"),
    R("ipv6.plen", "Payload Length", "uint16"),
    R("ipv6.nxt", "Next Header", "uint8", strings=IP_PROTOCOLS),
    R("ipv6.hlim", "Hop Limit", "uint8"),
    R("ipv6.src", "Source Address", "ipv6"),
    R("ipv6.dst", "Destination Address", "ipv6"),
    *(f for short, label in IPV6_EXTENSIONS.values() for f in _ipv6_ext(short, label)),
    R("ipv6.fragment", "IPv6 Fragment", "protocol"),
    R("ipv6.fragment.nxt", "Next Header", "uint8"),
    R("ipv6.fragment.offset", "Offset", "uint16"),
    R("ipv6.fragment.more", "More Fragments", "bool"),
)

TRANSPORT_FIELDS: tuple[R, ...] = (
    R("tcp", "Transmission Control Protocol", "protocol"),
    R("tcp.srcport", "Source Port", "uint16"),
    R("tcp.dstport", "Destination Port", "uint16"),
    R("tcp.seq_raw", "Sequence Number (raw)", "uint32"),
    R("tcp.ack_raw", "Acknowledgment number (raw)", "uint32"),
    R("tcp.hdr_len", "Header Length", "uint8", mask=0xF0),
    R("tcp.flags", "Flags", "uint16"),
    R("tcp.flags.res", "Reserved", "uint8"),
    *(R(f"tcp.flags.{name}", label, "bool") for name, label in _TCP_FLAGS),
    R("tcp.window_size_value", "Window", "uint16"),
    R("tcp.checksum", "Checksum", "uint16"),
    R("tcp.urgent_pointer", "Urgent Pointer", "uint16"),
    R("tcp.payload", "TCP payload", "bytes"),
    R("udp", "User Datagram Protocol", "protocol"),
    R("udp.srcport", "Source Port", "uint16"),
    R("udp.dstport", "Destination Port", "uint16"),
    R("udp.length", "Length", "uint16"),
    R("udp.checksum", "Checksum", "uint16"),
    R("udp.payload", "UDP payload", "bytes"),
    R("data", "Data", "protocol"),
    R("data.data", "Data", "bytes"),
    R("data.len", "Length", "uint32"),
)

#: Every option node may be drawn as cut by the capture or broken, whatever its kind.
_CUT = ("TCP Option - kind",)

TCP_OPTION_FIELDS: tuple[R, ...] = (
    R("tcp.options", "Options", "bytes"),
    *(R(f"tcp.options.{short}", f"TCP Option - {label}", "protocol", also=_CUT)
      for kind, (short, label) in TCP_OPTIONS.items() if short != "experimental"),
    # 253/254: named after the experiment id when there is one (Wireshark's label)
    R("tcp.options.experimental", "TCP Option - Experimental", "protocol",
      also=(*(f"TCP Option - {TCP_OPTIONS[k][1]}" for k in (253, 254)),
            "TCP Option - TCP Fast Open", *_CUT)),
    R("tcp.options.unknown", "TCP Option - Unknown", "protocol", also=_CUT),
    R("tcp.option_kind", "Kind", "uint8", strings=_OPTION_KINDS),
    R("tcp.option_len", "Length", "uint8"),
    R("tcp.options.padding", "Padding", "bytes"),
    R("tcp.options.mss_val", "MSS Value", "uint16"),
    R("tcp.options.wscale.shift", "Shift count", "uint8"),
    R("tcp.options.wscale.multiplier", "Multiplier", "uint16"),
    R("tcp.options.sack_le", "TCP SACK Left Edge", "uint32"),
    R("tcp.options.sack_re", "TCP SACK Right Edge", "uint32"),
    R("tcp.options.timestamp.tsval", "Timestamp value", "uint32"),
    R("tcp.options.timestamp.tsecr", "Timestamp echo reply", "uint32"),
    R("tcp.options.user_to_granularity", "Granularity", "bool"),
    R("tcp.options.user_to_val", "User Timeout", "uint16"),
    R("tcp.options.tfo.cookie", "Fast Open Cookie", "bytes"),
    R("tcp.options.tfo.request", "Fast Open Cookie Request", "bool"),
    R("tcp.options.unknown.payload", "Payload", "bytes"),
    R("tcp.options.experimental.exid", "Experiment Identifier", "uint32",
      strings=EXPERIMENT_IDS),
    R("tcp.options.experimental.data", "Data", "bytes"),
    R("tcp.options.acc_ecn.ee0b", "Accurate ECN Echo ECT(0) Byte Counter", "uint24"),
    R("tcp.options.acc_ecn.eceb", "Accurate ECN Echo CE Byte Counter", "uint24"),
    R("tcp.options.acc_ecn.ee1b", "Accurate ECN Echo ECT(1) Byte Counter", "uint24"),
)

#: The encapsulations (issue 13): VXLAN, GENEVE, GRE, ERSPAN II/III, MPLS (+ PW control word),
#: PPPoE session + PPP. Names and types are Wireshark 4.0's; bitfields wider than a byte are
#: drawn without a bit picture.
TUNNEL_FIELDS: tuple[R, ...] = (
    R("vxlan", "Virtual eXtensible Local Area Network", "protocol"),
    R("vxlan.flags", "Flags", "uint16"),
    R("vxlan.flag_g", "GBP Extension", "bool"),
    R("vxlan.flag_i", "VXLAN Network ID (VNI)", "bool"),
    R("vxlan.flag_d", "Don't Learn", "bool"),
    R("vxlan.flag_a", "Policy Applied", "bool"),
    R("vxlan.flags_reserved", "Reserved(R)", "uint16"),
    R("vxlan.gbp", "Group Policy ID", "uint16"),
    R("vxlan.vni", "VXLAN Network Identifier (VNI)", "uint24"),
    R("vxlan.reserved8", "Reserved", "uint8"),
    R("geneve", "Generic Network Virtualization Encapsulation", "protocol"),
    R("geneve.version", "Version", "uint8"),
    R("geneve.option.length", "Length", "uint8"),  # bytes: the header's and each option's
    R("geneve.flags", "Flags", "uint8"),
    R("geneve.flags.oam", "Operations, Administration and Management Frame", "bool"),
    R("geneve.flags.critical", "Critical Options Present", "bool"),
    R("geneve.proto_type", "Protocol Type", "uint16", strings=ETHERTYPES),
    R("geneve.vni", "Virtual Network Identifier (VNI)", "uint24"),
    R("geneve.reserved", "Reserved", "uint8"),
    R("geneve.options", "Options", "bytes"),
    R("geneve.option", "Option", "bytes"),
    R("geneve.option.class", "Class", "uint16"),
    R("geneve.option.type", "Type", "uint8"),
    R("geneve.option.type.critical", "Critical Option", "bool"),
    R("geneve.option.unknown.data", "Unknown Option Data", "bytes"),
    R("gre", "Generic Routing Encapsulation", "protocol"),
    R("gre.flags_and_version", "Flags and Version", "uint16"),
    R("gre.flags.checksum", "Checksum Bit", "bool"),
    R("gre.flags.routing", "Routing Bit", "bool"),
    R("gre.flags.key", "Key Bit", "bool"),
    R("gre.flags.sequence_number", "Sequence Number Bit", "bool"),
    R("gre.flags.strict_source_route", "Strict Source Route Bit", "bool"),
    R("gre.flags.recursion_control", "Recursion control", "uint16"),
    R("gre.flags.reserved", "Flags (Reserved)", "uint16"),
    R("gre.flags.version", "Version", "uint16"),
    R("gre.proto", "Protocol Type", "uint16", strings=ETHERTYPES),
    R("gre.checksum", "Checksum", "uint16"),
    R("gre.offset", "Offset", "uint16"),
    R("gre.key", "Key", "uint32"),
    R("gre.sequence_number", "Sequence Number", "uint32"),
    R("erspan", "Encapsulated Remote Switch Packet ANalysis", "protocol"),
    R("erspan.version", "Version", "uint16"),
    R("erspan.vlan", "Vlan", "uint16"),
    R("erspan.cos", "COS", "uint16"),
    R("erspan.encap", "Encap", "uint16"),
    R("erspan.bso", "Bad/Short/Oversized", "uint16"),
    R("erspan.truncated", "Truncated", "uint16"),
    R("erspan.spanid", "SpanID", "uint16"),
    R("erspan.reserved", "Reserved", "uint32"),
    R("erspan.index", "Index", "uint32"),
    R("erspan.timestamp", "Timestamp", "uint32"),
    R("erspan.sgt", "Security Group Tag", "uint16"),
    R("erspan.p", "Has Ethernet PDU", "uint16"),
    R("erspan.ft", "Frame Type", "uint16"),
    R("erspan.hw", "Hardware ID", "uint16"),
    R("erspan.direction", "Direction", "bool"),
    R("erspan.gra", "Timestamp granularity", "uint16"),
    R("erspan.o", "Optional Sub headers", "uint16"),
    R("erspan.platid", "Platform ID", "uint32"),
    R("erspan.pid3.rsvd1", "Reserved", "uint32"),
    R("erspan.pid3.port_index", "Port ID/Index", "uint32"),
    R("erspan.pid3.timestamp", "Upper 32-bit Timestamp", "uint32"),
    R("erspan.pid5.switchid", "Switch ID", "uint32"),
    R("erspan.pid5.port_index", "Port ID/Index", "uint32"),
    R("erspan.pid5.timestamp", "Timestamp (seconds)", "uint32"),
    R("mpls", "MultiProtocol Label Switching Header", "protocol"),
    R("mpls.label", "MPLS Label", "uint32"),
    R("mpls.exp", "MPLS Experimental Bits", "uint32"),
    R("mpls.bottom", "MPLS Bottom Of Label Stack", "uint32"),
    R("mpls.ttl", "MPLS TTL", "uint32"),
    R("pwethcw", "PW Ethernet Control Word", "protocol"),
    R("pweth.cw.sequence_number", "Sequence Number", "uint16"),
    R("pppoes", "PPP-over-Ethernet Session", "protocol"),
    R("pppoe.version", "Version", "uint8", mask=0xF0),
    R("pppoe.type", "Type", "uint8", mask=0x0F),
    R("pppoe.code", "Code", "uint8"),
    R("pppoe.session_id", "Session ID", "uint16"),
    R("pppoe.payload_length", "Payload Length", "uint16"),
    R("ppp", "Point-to-Point Protocol", "protocol"),
    R("ppp.protocol", "Protocol", "uint16", strings=PPP_PROTOCOLS),
)
