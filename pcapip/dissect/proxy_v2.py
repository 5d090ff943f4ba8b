"""PROXY protocol version 2 (the binary header), strictly per section 2.2 of the spec.

The receiver rules decide what is an error: a command other than LOCAL/PROXY
or a family/transport byte outside the seven valid values must be dropped, an
address block larger than the header is impossible, and a CRC32C mismatch
makes the connection invalid. ``len`` is always honoured, even for LOCAL.
"""

from __future__ import annotations

import struct

from pcapip.dissect.addr import ip_value, ipv4_text, ipv6_text
from pcapip.dissect.codes import expert
from pcapip.dissect.fields import Expert, Field, Severity
from pcapip.dissect.hf import item, subtree, vals
from pcapip.dissect.hf_proxy import COMMANDS, FAMILY_PROTOCOLS, TRANSPORTS
from pcapip.dissect.proxy_model import FIXED, SIGNATURE, ParseState, ProxyHeader, ProxyParse
from pcapip.dissect.proxy_tlv import TlvParser

FAMILIES = {0: "UNSPEC", 1: "INET", 2: "INET6", 3: "UNIX"}
ADDR_SIZES = {0: 0, 1: 12, 2: 36, 3: 216}
VALID_FAM = FAMILY_PROTOCOLS  # the seven valid family/transport bytes (hf_proxy's value strings)
UNIX_LEN = 108
# INET and INET6: address size, its text form, and the fields of source and destination
_INET = {
    1: (4, ipv4_text, ("proxy.src.ipv4", "proxy.dst.ipv4")),
    2: (16, ipv6_text, ("proxy.src.ipv6", "proxy.dst.ipv6")),
}


def _add_err(node: Field | None, experts: list[Expert], e: Expert) -> None:
    if node is not None:
        node.experts.append(e)
    experts.append(e)


def parse_v2(data: bytes, base: int, final: bool, tree: bool = True) -> ProxyParse:
    """Parse ``data`` that starts with the 12-byte signature and has at least 13 bytes.

    ``tree=False`` draws no field tree (``root`` stays None): the same rules and the same
    header, experts and length, for the flow stage, which keeps nothing else.
    """
    n = len(data)
    experts: list[Expert] = []
    root = subtree("proxy", base, min(n, FIXED)) if tree else None
    vc = data[12]
    ver, cmd = vc >> 4, vc & 0x0F
    if root is not None:
        root.add(item("proxy.v2.magic", SIGNATURE.hex(), base, 12, SIGNATURE))
        root.add(item("proxy.v2.version", ver, base + 12, 1, ver, bits=ver))
    if ver != 2:
        _add_err(root, experts, expert("proxy.v2.bad_version", base + 12, 1,
                                       f"version nibble is {ver}; after the v2 signature it must "
                                       "be 2"))
        return ProxyParse(ParseState.MALFORMED, tree=root, experts=experts)
    if root is not None:
        cmd_name = COMMANDS.get(cmd, f"unassigned ({cmd})")
        root.add(item("proxy.v2.cmd", f"{cmd_name} ({cmd})", base + 12, 1, cmd, bits=cmd))
        root.add(item("proxy.version", 2, base + 12, 1, 2, generated=True))
    if cmd not in COMMANDS:
        _add_err(root, experts, expert("proxy.v2.bad_command", base + 12, 1,
                                       f"command {cmd} is neither LOCAL (0) nor PROXY (1): "
                                       "receivers must drop the connection"))
    fam_ok = False
    hi = lo = 0
    if n >= 14:
        hi, lo, fam_ok = _family_byte(data[13], base, root, experts)
    header = ProxyHeader(version=2, command=COMMANDS.get(cmd, f"0x{cmd:x}"),
                         family=FAMILIES.get(hi, f"0x{hi:x}"),
                         transport=TRANSPORTS.get(lo, f"0x{lo:x}"))
    if n < FIXED:
        return _early(root, experts, header, n, FIXED - n, base, final, None)
    ln = struct.unpack_from("!H", data, 14)[0]
    total = FIXED + ln
    if root is not None:
        root.add(item("proxy.v2.length", ln, base + 14, 2, ln))
    header.length = total
    if n < total:
        return _early(root, experts, header, n, total - n, base, final, total)
    if root is not None:
        root.length = total
    hdr = data[:total]
    tlv_start = _address_block(hdr, base, root, header, experts, cmd=cmd, fam_ok=fam_ok)
    tlvp = TlvParser(hdr, base)
    if tlv_start < total:
        # TLVs are decoded into their nodes (the CRC32C check points at its TLV's node):
        # without a tree, into a node dropped afterwards
        at = root if root is not None else subtree("proxy", base, total)
        kept = len(at.children)
        tlvs = tlvp.parse(tlv_start, total, at)
        if cmd == 0 and hi == 0 and fam_ok and _errors(tlvp.experts):
            # LOCAL with UNSPEC: receivers skip the block, an address of any size included
            del at.children[kept:]
            at.add(subtree("proxy.v2.unknown", base + FIXED, total - FIXED, hdr[FIXED:],
                           more=f" ({total - FIXED} bytes, ignored with LOCAL and UNSPEC)"))
        else:
            header.tlvs = tlvs
            experts.extend(tlvp.experts)
            _check_crc(hdr, tlvp, base, at, header, experts)
    if cmd == 0:
        experts.append(expert("proxy.v2.local", base + 12, 1))
    elif cmd == 1 and fam_ok and hi == 0:
        _add_err(root, experts, expert("proxy.v2.unspec", base + 13, 1,
                                       "PROXY command with the UNSPEC family: the receiver "
                                       "keeps the real endpoints, no client address is passed"))
    if cmd != 1:
        header.src_addr = header.dst_addr = None
        header.src_port = header.dst_port = None
    experts.sort(key=lambda e: -int(e.severity))
    bad = _errors(experts)
    return ProxyParse(ParseState.MALFORMED if bad else ParseState.OK, header=header,
                      length=total, tree=root, experts=experts)


def _errors(experts: list[Expert]) -> bool:
    return any(e.severity >= Severity.ERROR for e in experts)


def _family_byte(fam: int, base: int, root: Field | None,
                 experts: list[Expert]) -> tuple[int, int, bool]:
    """Byte 13, the address family and transport: (family, transport, a valid pair)."""
    hi, lo = fam >> 4, fam & 0x0F
    ff = None
    if root is not None:
        ff = root.add(item("proxy.v2.addr_family_protocol",
                           f"{vals('proxy.v2.addr_family_protocol', fam, 'invalid')} "
                           f"(0x{fam:02x})", base + 13, 1, fam))
        ff.add(item("proxy.v2.addr_family",
                    f"{vals('proxy.v2.addr_family', hi, 'invalid')} (0x{hi:x})", base + 13,
                    1, hi, bits=hi))
        ff.add(item("proxy.v2.protocol",
                    f"{vals('proxy.v2.protocol', lo, 'invalid')} (0x{lo:x})", base + 13, 1,
                    lo, bits=lo))
    if hi not in FAMILIES:
        _add_err(ff, experts, expert("proxy.v2.bad_family", base + 13, 1,
                                     f"address family {hi} is not UNSPEC, INET, INET6 or UNIX"))
    if lo not in TRANSPORTS:
        _add_err(ff, experts, expert("proxy.v2.bad_transport", base + 13, 1,
                                     f"transport {lo} is not UNSPEC, STREAM or DGRAM"))
    if hi in FAMILIES and lo in TRANSPORTS and fam not in VALID_FAM:
        _add_err(ff, experts, expert("proxy.v2.bad_family_protocol", base + 13, 1,
                                     f"family/transport byte 0x{fam:02x} is not one of 0x00, "
                                     "0x11, 0x12, 0x21, 0x22, 0x31, 0x32"))
    return hi, lo, fam in VALID_FAM


def _address_block(hdr: bytes, base: int, root: Field | None, header: ProxyHeader,
                   experts: list[Expert], *, cmd: int, fam_ok: bool) -> int:
    """The addresses after the fixed part of a complete header ``hdr``; where its TLVs start
    (its end when none can: an invalid family, or a block too short for its family)."""
    total = len(hdr)
    ln = total - FIXED
    hi = hdr[13] >> 4
    size = ADDR_SIZES.get(hi, 0) if fam_ok else 0
    if not fam_ok:
        if ln and root is not None:
            root.add(subtree("proxy.v2.unknown", base + FIXED, ln, hdr[FIXED:],
                             more=f" ({ln} bytes)"))
        return total  # nothing parseable behind an invalid family byte
    if ln < size:
        if cmd == 1:
            _add_err(root, experts, expert("proxy.v2.addr_too_short", base + 14, 2,
                                           f"length {ln} is smaller than the {size}-byte address "
                                           f"block of {VALID_FAM[hdr[13]]}"))
        else:
            _add_err(root, experts, expert("proxy.v2.local_short_addr", base + 14, 2,
                                           f"LOCAL header of length {ln} is shorter than the "
                                           f"{size}-byte address block of {VALID_FAM[hdr[13]]}"))
        if ln and root is not None:
            root.add(subtree("proxy.v2.unknown", base + FIXED, ln, hdr[FIXED:],
                             more=f" ({ln} bytes)"))
        return total
    _addresses(hdr, hi, base, root, header, experts)
    return FIXED + size


def _early(root: Field | None, experts: list[Expert], header: ProxyHeader, n: int, need: int,
           base: int, final: bool, total: int | None) -> ProxyParse:
    """Not all of the header is here yet: an error already visible decides, else NEED_MORE."""
    length = total or 0
    if any(e.severity >= Severity.ERROR for e in experts):
        return ProxyParse(ParseState.MALFORMED, header=header, tree=root, experts=experts,
                          length=length)
    if final:
        e = expert("proxy.truncated", base, n,
                   f"data ends after {n} bytes; the v2 header needs "
                   f"{total if total is not None else FIXED}")
        _add_err(root, experts, e)
        return ProxyParse(ParseState.MALFORMED, header=header, tree=root, experts=experts,
                          length=length)
    e = expert("proxy.incomplete", base, n,
               f"v2 header incomplete after {n} bytes: need {need} more")
    if root is not None:
        root.experts.append(e)
    return ProxyParse(ParseState.NEED_MORE, need=need, tree=root, experts=[e, *experts],
                      length=length)


def _addresses(hdr: bytes, hi: int, base: int, root: Field | None, h: ProxyHeader,
               experts: list[Expert]) -> None:
    a = FIXED
    if hi == 1 or hi == 2:
        size, text, (f_src, f_dst) = _INET[hi]
        src, dst = hdr[a : a + size], hdr[a + size : a + 2 * size]
        sp, dp = struct.unpack_from("!HH", hdr, a + 2 * size)
        h.src_addr, h.dst_addr = text(src), text(dst)
        h.src_port, h.dst_port = sp, dp
        if root is None:
            return
        root.add(item(f_src, h.src_addr, base + a, size, ip_value(src)))
        root.add(item(f_dst, h.dst_addr, base + a + size, size, ip_value(dst)))
        root.add(item("proxy.srcport", sp, base + a + 2 * size, 2, sp))
        root.add(item("proxy.dstport", dp, base + a + 2 * size + 2, 2, dp))
    elif hi == 3:
        paths = []
        for k, fname in enumerate(("proxy.v2.src.unix", "proxy.v2.dst.unix")):
            off = a + k * UNIX_LEN
            raw = hdr[off : off + UNIX_LEN]
            path = _unix_path(raw, base + off, root, experts)
            paths.append(path)
            if root is not None:
                root.add(item(fname, path, base + off, UNIX_LEN, path))
        h.src_addr, h.dst_addr = paths
    # family 0 (UNSPEC): no address block


def _unix_path(raw: bytes, at: int, root: Field | None, experts: list[Expert]) -> str:
    """A NUL-padded sun_path; a leading NUL is a Linux abstract name, shown as '@name'."""
    if raw[:1] == b"\0" and any(raw[1:]):
        return "@" + raw[1:].rstrip(b"\0").decode("utf-8", "backslashreplace")
    nul = raw.find(b"\0")
    if nul == -1:
        _add_err(root, experts, expert("proxy.v2.unix_unterminated", at, UNIX_LEN,
                                       "UNIX address uses all 108 bytes without a NUL"))
        return raw.decode("utf-8", "backslashreplace")
    if any(raw[nul:]):
        first = nul + next(k for k, b in enumerate(raw[nul:]) if b)
        _add_err(root, experts, expert("proxy.v2.unix_padding", at + first, UNIX_LEN - first,
                                       f"UNIX address has non-NUL byte 0x{raw[first]:02x} at "
                                       f"offset {first}, after the terminating NUL at {nul}"))
    return raw[:nul].decode("utf-8", "backslashreplace")


def _check_crc(hdr: bytes, tlvp: TlvParser, base: int, root: Field, h: ProxyHeader,
               experts: list[Expert]) -> None:
    if not tlvp.crc_tlvs:
        return
    import google_crc32c  # (only a header with a CRC TLV pays its import)

    voff, stored = tlvp.crc_tlvs[0]
    zeroed = hdr[:voff] + b"\0\0\0\0" + hdr[voff + 4 :]
    computed = google_crc32c.value(zeroed)
    ok = computed == stored
    h.crc32c = "ok" if ok else "bad"
    crc_node = next(f for f in root.walk() if f.name == "proxy.v2.tlv.crc32c"
                    and f.offset == base + voff)
    crc_node.add(item("proxy.v2.tlv.crc32c.status", "Good" if ok else "Bad", base + voff, 4,
                      h.crc32c, generated=True))
    crc_node.add(item("proxy.v2.tlv.crc32c.computed", f"0x{computed:08x}", base + voff, 4,
                      computed, generated=True))
    if not ok:
        _add_err(crc_node, experts,
                 expert("proxy.v2.tlv.crc32c_mismatch", base + voff, 4,
                        f"CRC32C is 0x{stored:08x} but the header computes to 0x{computed:08x}: "
                        "receivers must treat the connection as invalid"))
    for voff2, _ in tlvp.crc_tlvs[1:]:
        _add_err(root, experts, expert("proxy.v2.tlv.crc32c_duplicate", base + voff2 - 3, 7,
                                       "a second CRC32C TLV; only the first one is verified"))
