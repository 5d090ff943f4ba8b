"""PROXY v2 TLVs: registered types, SSL sub-TLVs and the cloud vendors' custom types.

Two mistakes of other decoders shape this module: SSL sub-TLVs are parsed only
inside the SSL TLV's own length (so the TLVs after it stay top-level
siblings), and every length is checked against its container before a byte is
read, so a lying length is reported instead of swallowing what follows.
"""

from __future__ import annotations

import struct
from typing import Any

from pcapip.dissect.codes import expert
from pcapip.dissect.fields import Expert, Field, escape_text
from pcapip.dissect.hf import HF, item, subtree
from pcapip.dissect.hf_proxy import TLV_TYPES
from pcapip.dissect.proxy_model import ProxyTlv

PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
PP2_TYPE_UNIQUE_ID = 0x05
PP2_TYPE_SSL = 0x20
PP2_TYPE_NETNS = 0x30
PP2_TYPE_GCP = 0xE0  # Google Cloud Private Service Connect: 64-bit connection id
PP2_TYPE_AWS = 0xEA  # AWS: subtype 0x01 = VPC endpoint id (text)
PP2_TYPE_AZURE = 0xEE  # Azure: subtype 0x01 = Private Link id (32-bit little-endian)
UNIQUE_ID_MAX = 128
SSL_FIXED = 5  # client(1) + verify(4)

PP2_CLIENT_SSL, PP2_CLIENT_CERT_CONN, PP2_CLIENT_CERT_SESS = 0x01, 0x02, 0x04

# registered types: (name, label); the label is the value string of proxy.v2.tlv.type
TLV_NAMES = {t: (name, TLV_TYPES[t]) for t, name in (
    (PP2_TYPE_ALPN, "alpn"), (PP2_TYPE_AUTHORITY, "authority"), (PP2_TYPE_CRC32C, "crc32c"),
    (PP2_TYPE_NOOP, "noop"), (PP2_TYPE_UNIQUE_ID, "unique_id"), (PP2_TYPE_SSL, "ssl"),
    (PP2_TYPE_NETNS, "netns"))}

# SSL sub-TLVs: (name, label, is_text), the label and type from the field registered as
# proxy.v2.tlv.<name>
SSL_SUBTYPES: dict[int, tuple[str, str, bool]] = {
    st: (name, HF[f"proxy.v2.tlv.{name}"].label, HF[f"proxy.v2.tlv.{name}"].ftype == "string")
    for st, name in ((0x21, "ssl.version"), (0x22, "ssl.cn"), (0x23, "ssl.cipher"),
                     (0x24, "ssl.sig_alg"), (0x25, "ssl.key_alg"), (0x26, "ssl.group"),
                     (0x27, "ssl.sig_scheme"), (0x28, "ssl.client_cert"))
}


def _shown(v: Any) -> str:
    if isinstance(v, bytes):
        return v.hex() if len(v) <= 64 else v[:64].hex() + "..."
    return escape_text(str(v))


class TlvParser:
    """Parses the TLV area of one header into ProxyTlv objects, tree nodes and experts."""

    def __init__(self, hdr: bytes, base: int) -> None:
        self.hdr = hdr
        self.base = base
        self.experts: list[Expert] = []
        self.crc_tlvs: list[tuple[int, int]] = []  # (value offset in hdr, stored value)

    def _text(self, node: Field, raw: bytes, at: int, what: str) -> str | bytes:
        """UTF-8 text, or the raw bytes with a warning at the first bad byte (``at`` absolute)."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            e = expert("proxy.v2.tlv.bad_text", at + exc.start, 1,
                       f"{what} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at value "
                       f"offset {exc.start})")
            node.experts.append(e)
            self.experts.append(e)
            return raw

    def _err(self, node: Field, code: str, off: int, length: int, message: str) -> None:
        e = expert(code, self.base + off, length, message)
        node.experts.append(e)
        self.experts.append(e)

    def parse(self, start: int, end: int, parent: Field) -> list[ProxyTlv]:
        hdr, base = self.hdr, self.base
        out: list[ProxyTlv] = []
        i = start
        while i < end:
            if end - i < 3:
                node = parent.add(item("proxy.v2.unknown", hdr[i:end].hex(), base + i, end - i,
                                       hdr[i:end], alt="Stray bytes"))
                self._err(node, "proxy.v2.tlv.stray_bytes", i, end - i,
                          f"{end - i} byte(s) at the end of the header are too short for a "
                          "TLV (3-byte type+length)")
                break
            t = hdr[i]
            ln = (hdr[i + 1] << 8) | hdr[i + 2]
            node = parent.add(subtree("proxy.v2.tlv", base + i, min(3 + ln, end - i)))
            node.add(item("proxy.v2.tlv.type", f"{self._type_label(t)} (0x{t:02x})", base + i, 1,
                          t))
            node.add(item("proxy.v2.tlv.length", ln, base + i + 1, 2, ln))
            if i + 3 + ln > end:
                avail = hdr[i + 3 : end]
                if avail:
                    node.add(subtree("proxy.v2.tlv.value", base + i + 3, len(avail), avail,
                                     more=f" (truncated): {_shown(avail)}"))
                node.label += f": {self._type_label(t)} (length {ln}, overruns the header)"
                self._err(node, "proxy.v2.tlv.overrun", i, end - i,
                          f"TLV type 0x{t:02x} length {ln} needs {3 + ln} bytes but only "
                          f"{end - i} remain in the header")
                out.append(ProxyTlv(t, self._type_name(t), avail, base + i, end - i))
                break
            value = hdr[i + 3 : i + 3 + ln]
            tlv = self._decode(t, value, i, ln, node)
            out.append(tlv)
            i += 3 + ln
        return out

    def _type_name(self, t: int) -> str:
        if t in TLV_NAMES:
            return TLV_NAMES[t][0]
        if 0xE0 <= t <= 0xEF:
            return "custom"
        if 0xF0 <= t <= 0xF7:
            return "experimental"
        return "unknown"

    def _type_label(self, t: int) -> str:
        return TLV_TYPES.get(t) or self._type_name(t).capitalize()

    def _decode(self, t: int, v: bytes, i: int, ln: int, node: Field) -> ProxyTlv:
        base = self.base
        at = base + i + 3
        name = self._type_name(t)
        value: Any = v
        children: list[ProxyTlv] = []
        label_value = ""
        if t in (PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_NETNS):
            value = self._text(node, v, at, TLV_NAMES[t][1])
            fname = {PP2_TYPE_ALPN: "alpn", PP2_TYPE_AUTHORITY: "authority",
                     PP2_TYPE_NETNS: "netns"}[t]
            node.add(item(f"proxy.v2.tlv.{fname}", _shown(value), at, ln, value))
            label_value = _shown(value)
        elif t == PP2_TYPE_CRC32C:
            if ln != 4:
                self._err(node, "proxy.v2.tlv.crc32c_length", i, 3 + ln,
                          f"CRC32C TLV length is {ln}, must be 4")
                node.add(item("proxy.v2.tlv.value", v.hex(), at, ln, v))
            else:
                value = struct.unpack("!I", v)[0]
                node.add(item("proxy.v2.tlv.crc32c", f"0x{value:08x}", at, 4, value))
                self.crc_tlvs.append((i + 3, value))
                label_value = f"0x{value:08x}"
        elif t == PP2_TYPE_NOOP:
            node.add(subtree("proxy.v2.tlv.noop", at, ln, v, more=f" ({ln} bytes)"))
        elif t == PP2_TYPE_UNIQUE_ID:
            if ln > UNIQUE_ID_MAX:
                self._err(node, "proxy.v2.tlv.unique_id_too_long", i, 3 + ln,
                          f"UNIQUE_ID is {ln} bytes, the maximum is {UNIQUE_ID_MAX}")
            node.add(item("proxy.v2.tlv.unique_id", _shown(v), at, ln, v))
            label_value = _shown(v)
        elif t == PP2_TYPE_SSL:
            value, children = self._ssl(v, i, ln, node)
            label_value = ", ".join(f"{c.name.split('.', 1)[1]}={_shown(c.value)}"
                                    for c in children if c.name != "ssl.client_cert")
        elif t == PP2_TYPE_AWS:
            name, value, label_value = self._aws(v, i, ln, node)
        elif t == PP2_TYPE_AZURE:
            name, value, label_value = self._azure(v, i, ln, node)
        elif t == PP2_TYPE_GCP:
            name, value, label_value = self._gcp(v, i, ln, node)
        else:
            fname = {"custom": "custom", "experimental": "experimental"}.get(name, "value")
            node.add(item(f"proxy.v2.tlv.{fname}", _shown(v), at, ln, v))
            label_value = _shown(v)
            if t >= 0xF8:
                self._err(node, "proxy.v2.tlv.future_type", i, 1,
                          f"TLV type 0x{t:02x} is in the range reserved for future use")
            elif name == "unknown":
                hint = " (an SSL sub-TLV type outside an SSL TLV)" if 0x21 <= t <= 0x28 else ""
                self._err(node, "proxy.v2.tlv.unknown_type", i, 1,
                          f"TLV type 0x{t:02x} is not registered{hint}")
        node.label += f": {self._type_label(t)}" + (f": {label_value}" if label_value else "")
        return ProxyTlv(t, name, value, base + i, 3 + ln, children)

    def _ssl(self, v: bytes, i: int, ln: int, node: Field) -> tuple[Any, list[ProxyTlv]]:
        base = self.base
        at = base + i + 3
        if ln < SSL_FIXED:
            self._err(node, "proxy.v2.tlv.ssl_too_short", i, 3 + ln,
                      f"SSL TLV is {ln} bytes, shorter than its 5-byte client+verify part")
            if v:
                node.add(item("proxy.v2.tlv.value", v.hex(), at, ln, v))
            return v, []
        client = v[0]
        verify = struct.unpack_from("!I", v, 1)[0]
        cf = node.add(item("proxy.v2.tlv.ssl.client", f"0x{client:02x}", at, 1, client))
        for bit, fname in ((PP2_CLIENT_SSL, "ssl"), (PP2_CLIENT_CERT_CONN, "cert_conn"),
                           (PP2_CLIENT_CERT_SESS, "cert_sess")):
            on = bool(client & bit)
            cf.add(item(f"proxy.v2.tlv.ssl.client.{fname}", on, at, 1, on))
        if client & ~0x07:
            self._err(cf, "proxy.v2.tlv.ssl_client_bits", i + 3, 1,
                      f"SSL client field 0x{client:02x} sets undefined bits 0x{client & ~0x07:02x}")
        node.add(item("proxy.v2.tlv.ssl.verify", f"{verify}" + (" (certificate verified)"
                      if verify == 0 else " (not verified)"), at + 1, 4, verify))
        value = {"client": client, "verify": verify, "ssl": bool(client & PP2_CLIENT_SSL),
                 "cert_conn": bool(client & PP2_CLIENT_CERT_CONN),
                 "cert_sess": bool(client & PP2_CLIENT_CERT_SESS)}
        subs: list[ProxyTlv] = []
        j, end = i + 3 + SSL_FIXED, i + 3 + ln
        hdr = self.hdr
        while j < end:
            if end - j < 3:
                sub = node.add(item("proxy.v2.unknown", hdr[j:end].hex(), base + j, end - j,
                                    hdr[j:end], alt="Orphan bytes"))
                self._err(sub, "proxy.v2.tlv.ssl_orphan", j, end - j,
                          f"{end - j} byte(s) at the end of the SSL TLV are too short for a "
                          "sub-TLV header")
                break
            st = hdr[j]
            sl = (hdr[j + 1] << 8) | hdr[j + 2]
            known = SSL_SUBTYPES.get(st)
            unknown = HF["proxy.v2.tlv.value"].also[0]  # "Unknown sub-TLV"
            sname, slabel, is_text = known or ("ssl.unknown", f"{unknown} 0x{st:02x}", False)
            sub = node.add(subtree("proxy.v2.tlv", base + j, min(3 + sl, end - j),
                                   alt="SSL sub-TLV", more=f": {slabel}"))
            sub.add(item("proxy.v2.tlv.type", f"{slabel} (0x{st:02x})", base + j, 1, st))
            sub.add(item("proxy.v2.tlv.length", sl, base + j + 1, 2, sl))
            if j + 3 + sl > end:
                self._err(sub, "proxy.v2.tlv.ssl_sub_overrun", j, end - j,
                          f"SSL sub-TLV 0x{st:02x} length {sl} runs past the end of the SSL TLV "
                          f"({end - j - 3} bytes left)")
                break
            sv: Any = hdr[j + 3 : j + 3 + sl]
            if is_text:
                sv = self._text(sub, sv, base + j + 3, slabel)
            if known:
                sub.add(item("proxy.v2.tlv." + sname, _shown(sv), base + j + 3, sl, sv))
            else:
                sub.add(subtree("proxy.v2.tlv.value", base + j + 3, sl, sv, alt=unknown,
                                more=f" 0x{st:02x}: {_shown(sv)}"))
            if known:
                sub.label += f": {_shown(sv)}" if is_text else f" ({sl} bytes)"
            else:
                self._err(sub, "proxy.v2.tlv.ssl_unknown_sub", j, 1,
                          f"SSL sub-TLV type 0x{st:02x} is not one of 0x21-0x28")
            subs.append(ProxyTlv(st, sname, sv, base + j, 3 + sl))
            j += 3 + sl
        if client & PP2_CLIENT_SSL and not any(s.type == 0x21 for s in subs):
            self._err(node, "proxy.v2.tlv.ssl_version_missing", i, 3 + ln,
                      "SSL client flag is set but no SSL version sub-TLV (0x21) follows")
        return value, subs

    def _vendor_bad(self, node: Field, i: int, ln: int, message: str) -> None:
        self._err(node, "proxy.v2.tlv.vendor_layout", i, 3 + ln, message)

    def _aws(self, v: bytes, i: int, ln: int, node: Field) -> tuple[str, Any, str]:
        at = self.base + i + 3
        if ln < 1:
            self._vendor_bad(node, i, ln, "AWS TLV 0xEA is empty (needs a subtype byte)")
            return "custom", v, ""
        sub = v[0]
        node.add(item("proxy.v2.tlv.aws.subtype", f"0x{sub:02x}", at, 1, sub))
        if sub == 0x01:
            vid = self._text(node, v[1:], at + 1, "AWS VPC endpoint id")
            node.add(item("proxy.v2.tlv.aws.vpce_id", _shown(vid), at + 1, ln - 1, vid))
            return "aws.vpce_id", vid, _shown(vid)
        node.add(item("proxy.v2.tlv.custom", _shown(v[1:]), at + 1, ln - 1, v[1:]))
        return "custom", v, f"subtype 0x{sub:02x}"

    def _azure(self, v: bytes, i: int, ln: int, node: Field) -> tuple[str, Any, str]:
        at = self.base + i + 3
        if ln == 5 and v[0] == 0x01:
            node.add(item("proxy.v2.tlv.azure.subtype", "0x01", at, 1, 1))
            link = struct.unpack_from("<I", v, 1)[0]
            node.add(item("proxy.v2.tlv.azure.link_id", link, at + 1, 4, link))
            return "azure.link_id", link, str(link)
        if ln >= 1:
            node.add(item("proxy.v2.tlv.azure.subtype", f"0x{v[0]:02x}", at, 1, v[0]))
        if ln >= 1 and v[0] != 0x01:
            node.add(item("proxy.v2.tlv.custom", _shown(v[1:]), at + 1, ln - 1, v[1:]))
            return "custom", v, f"subtype 0x{v[0]:02x}"
        self._vendor_bad(node, i, ln, f"Azure TLV 0xEE subtype 0x01 needs 5 bytes "
                         f"(subtype + 32-bit link id), this one has {ln}")
        if ln > 1:
            node.add(item("proxy.v2.tlv.custom", _shown(v[1:]), at + 1, ln - 1, v[1:]))
        return "custom", v, ""

    def _gcp(self, v: bytes, i: int, ln: int, node: Field) -> tuple[str, Any, str]:
        at = self.base + i + 3
        if ln == 8:
            psc = struct.unpack("!Q", v)[0]
            node.add(item("proxy.v2.tlv.gcp.psc_id", psc, at, 8, psc))
            return "gcp.psc_id", psc, str(psc)
        self._vendor_bad(node, i, ln, f"TLV 0xE0 is {ln} bytes; Google Cloud's PSC connection "
                         "id is 8 (read as a custom TLV)")
        node.add(item("proxy.v2.tlv.custom", _shown(v), at, ln, v))
        return "custom", v, _shown(v)
