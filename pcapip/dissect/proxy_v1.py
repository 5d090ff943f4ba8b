"""PROXY protocol version 1 (the text line), strictly per section 2.1 of the spec.

Strict because the point is to tell an operator which rule their proxy broke:
every rejection names the rule (a stable expert code) and points at the bytes.
A line that is still incomplete is checked as far as it goes, so a stream that
can no longer become a valid header is reported as soon as that is certain.
"""

from __future__ import annotations

from _socket import AF_INET, AF_INET6, inet_pton  # (not socket: see pcapip.dissect.addr)

from pcapip.dissect.addr import ip_value, ipv4_text, ipv6_text
from pcapip.dissect.codes import expert
from pcapip.dissect.fields import Expert, Field, escape_text
from pcapip.dissect.hf import HF, item, subtree
from pcapip.dissect.proxy_model import ParseState, ProxyHeader, ProxyParse

MAGIC = b"PROXY"
MAX_LINE = 107  # longest valid line including CRLF
MIN_LINE = 15  # "PROXY UNKNOWN\r\n"
PROTOCOLS = ("TCP4", "TCP6", "UNKNOWN")
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
# per family: the filter names of the four fields and the words that name them in messages
_FIELDS = {
    v6: (names, tuple(HF[n].label.lower() for n in names))
    for v6, names in (
        (False, ("proxy.src.ipv4", "proxy.dst.ipv4", "proxy.srcport", "proxy.dstport")),
        (True, ("proxy.src.ipv6", "proxy.dst.ipv6", "proxy.srcport", "proxy.dstport")),
    )
}


def _decimal(s: str) -> bool:
    """Only the ASCII digits 0-9 (``str.isdigit`` also takes ``²`` and other digits)."""
    return s.isascii() and s.isdigit()


class _Reject(Exception):
    """Internal: one rule broken; carries the expert that explains it."""

    def __init__(self, e: Expert) -> None:
        super().__init__(e.message)
        self.expert = e


def _fail(code: str, off: int, length: int, message: str) -> _Reject:
    return _Reject(expert(code, off, max(length, 1), message))


# --- field validators: full tokens and, with partial=True, prefixes of tokens ---------------


def _check_port(tok: str, off: int, what: str, partial: bool) -> int | None:
    if tok == "":
        if partial:
            return None
        raise _fail("proxy.v1.bad_port", off, 1, f"{what} is empty")
    if not _decimal(tok):
        raise _fail("proxy.v1.bad_port", off, len(tok), f"{what} {tok!r} is not a decimal number")
    if len(tok) > 1 and tok[0] == "0":
        raise _fail("proxy.v1.port_leading_zero", off, len(tok),
                    f"{what} {tok!r} has a leading zero")
    if len(tok) > 5 or int(tok) > 65535:
        raise _fail("proxy.v1.port_range", off, len(tok), f"{what} {tok} is above 65535")
    return None if partial else int(tok)


def _check_ipv4(tok: str, off: int, what: str, partial: bool) -> None:
    parts = tok.split(".")
    if ":" in tok:
        raise _fail("proxy.v1.family_mismatch", off, len(tok),
                    f"{what} {tok!r} is an IPv6 address in a TCP4 line")
    if len(parts) > 4:
        raise _fail("proxy.v1.bad_ipv4", off, len(tok),
                    f"{what} {tok!r} has more than four numbers")
    pos = off
    last = len(parts) - 1
    for k, p in enumerate(parts):
        n = len(p)
        if n == 0:
            if partial and k == last:
                break
            raise _fail("proxy.v1.bad_ipv4", pos, 1, f"{what} {tok!r} has an empty number")
        if not (p.isascii() and p.isdigit()):  # as _decimal, inline: four per address
            raise _fail("proxy.v1.bad_ipv4", pos, n,
                        f"{what} {tok!r}: {p!r} is not a decimal number")
        if n > 1 and p[0] == "0":
            raise _fail("proxy.v1.ipv4_leading_zero", pos, n,
                        f"{what} {tok!r}: {p!r} has a leading zero (octal ambiguity)")
        if n > 3 or int(p) > 255:
            raise _fail("proxy.v1.ipv4_octet_range", pos, n,
                        f"{what} {tok!r}: {p} is above 255")
        pos += n + 1
    if not partial and len(parts) != 4:
        raise _fail("proxy.v1.bad_ipv4", off, len(tok),
                    f"{what} {tok!r} does not have exactly four numbers")


def _check_ipv6(tok: str, off: int, what: str, partial: bool) -> bool:
    """Validate IPv6 text; True when it ends in a dotted IPv4 part (a warning)."""
    if partial and tok == ":":
        return False  # the start of "::"
    if ":" not in tok:
        if partial and set(tok) <= _HEX:
            if len(tok) > 4:
                raise _fail("proxy.v1.ipv6_group_too_long", off, len(tok),
                            f"{what} {tok!r}: group has more than 4 hex digits")
            return False
        if tok and set(tok) <= _DIGITS | {"."}:
            raise _fail("proxy.v1.family_mismatch", off, len(tok),
                        f"{what} {tok!r} is an IPv4 address in a TCP6 line")
        raise _fail("proxy.v1.bad_ipv6", off, len(tok),
                    f"{what} {tok!r} is not an IPv6 address")
    if ":::" in tok:
        raise _fail("proxy.v1.bad_ipv6", off + tok.index(":::"), 3,
                    f"{what} {tok!r} contains ':::'")
    if tok.count("::") > 1:
        second = tok.index("::", tok.index("::") + 2)
        raise _fail("proxy.v1.ipv6_double_colon", off + second, 2,
                    f"{what} {tok!r} has more than one '::'")
    dotted = False
    groups_text = tok
    tail_bits = 0
    if "." in tok:
        cut = tok.rfind(":")
        v4 = tok[cut + 1 :]
        groups_text = tok[: cut + 1]
        _check_ipv4(v4, off + cut + 1, f"{what} IPv4 part", partial)
        dotted, tail_bits = True, 32
        if groups_text.endswith(":") and not groups_text.endswith("::"):
            groups_text = groups_text[:-1]
    double = "::" in groups_text
    head, _, tail = groups_text.partition("::") if double else (groups_text, "", "")
    nbits = tail_bits
    pos = off
    for side, text in ((0, head), (1, tail)):
        if side == 1:
            pos = off + len(head) + 2
        if text == "":
            continue
        groups = text.split(":")
        for k, g in enumerate(groups):
            last_of_all = side == (1 if double else 0) and k == len(groups) - 1 and not dotted
            if g == "":
                if partial and last_of_all:
                    break
                raise _fail("proxy.v1.bad_ipv6", pos, 1,
                            f"{what} {tok!r} has an empty group (a single ':' at an end)")
            if not set(g) <= _HEX:
                raise _fail("proxy.v1.bad_ipv6", pos, len(g),
                            f"{what} {tok!r}: {g!r} is not hexadecimal")
            if len(g) > 4:
                raise _fail("proxy.v1.ipv6_group_too_long", pos, len(g),
                            f"{what} {tok!r}: group {g!r} has more than 4 hex digits")
            nbits += 16
            pos += len(g) + 1
    if nbits > 128 or (double and nbits > 112):
        raise _fail("proxy.v1.ipv6_bit_count", off, len(tok),
                    f"{what} {tok!r} has more than 128 bits"
                    + (" ('::' must stand for at least one group)" if double else ""))
    if not partial and not double and nbits != 128:
        raise _fail("proxy.v1.ipv6_bit_count", off, len(tok),
                    f"{what} {tok!r} has {nbits} bits, not 128")
    return dotted


def _split_fields(line: str, start: int) -> list[tuple[str, int]]:
    """Split on single spaces, keeping each field's offset (empty fields mark double spaces)."""
    out = []
    pos = start
    for tok in line[start:].split(" "):
        out.append((tok, pos))
        pos += len(tok) + 1
    return out


def parse_v1(data: bytes, base: int, final: bool, tree: bool = True) -> ProxyParse:
    """Parse ``data`` that starts with ``PROXY``; ``tree=False`` draws no field tree (the
    same rules, header, experts and length)."""
    n = len(data)
    window = data[:MAX_LINE]
    cr, lf = window.find(b"\r"), window.find(b"\n")
    end = -1  # index of CR of the CRLF
    problem: Expert | None = None
    if lf != -1 and (cr == -1 or lf < cr):
        problem = expert("proxy.v1.lone_lf", base + lf, 1,
                         f"line ends with a bare LF at offset {lf} (CRLF required)")
    elif cr != -1:
        if cr + 1 < n:
            if data[cr + 1] == 0x0A:
                if cr + 2 <= MAX_LINE:
                    end = cr
                else:
                    problem = expert("proxy.v1.too_long", base, MAX_LINE,
                                     f"CRLF ends at byte {cr + 2}, beyond the 107-byte limit")
            else:
                problem = expert("proxy.v1.lone_cr", base + cr, 2,
                                 f"CR at offset {cr} is followed by 0x{data[cr + 1]:02x}, not LF")
        elif cr + 2 > MAX_LINE:
            problem = expert("proxy.v1.too_long", base, MAX_LINE,
                             "no CRLF within the first 107 bytes")
    elif n >= MAX_LINE:
        problem = expert("proxy.v1.too_long", base, MAX_LINE,
                         "no CRLF within the first 107 bytes")

    complete = end != -1
    stop = end if complete else (min(n, cr if cr != -1 else n, lf if lf != -1 else n))
    line = data[:stop].decode("latin-1")
    root = None
    if tree:
        root = subtree("proxy", base, (end + 2) if complete else stop)
        root.add(item("proxy.version", 1, base, 0, 1, generated=True))
        root.add(subtree("proxy.v1.magic", base, 5))
    header = ProxyHeader(version=1, command="PROXY", family="", transport="STREAM")
    experts: list[Expert] = []
    try:
        _parse_line(line, base, root, header, experts, partial=not complete)
    except _Reject as r:
        problem = r.expert  # a broken field is reported before a missing CRLF
    if problem is None and not complete:
        need = max(MIN_LINE - n, 1 if cr == n - 1 else 2)
        if final:
            problem = expert("proxy.truncated", base, n,
                             f"data ends after {n} bytes without the CRLF that ends a v1 header")
        else:
            e = expert("proxy.incomplete", base, n,
                       f"v1 header incomplete after {n} bytes: need at least {need} more")
            if root is not None:
                root.experts.extend([e, *experts])
            return ProxyParse(ParseState.NEED_MORE, need=need, tree=root, experts=[e, *experts])
    length = end + 2 if complete else 0
    header.length = length
    if problem is not None:
        experts.insert(0, problem)
        if root is not None:
            root.experts.extend(experts)
        return ProxyParse(ParseState.MALFORMED, header=header if header.family else None,
                          tree=root, experts=experts, length=length)
    if root is not None:
        root.experts.extend(experts)
    return ProxyParse(ParseState.OK, header=header, length=length, tree=root, experts=experts)


def _parse_line(line: str, base: int, root: Field | None, h: ProxyHeader, experts: list[Expert],
                *, partial: bool) -> None:
    """Validate the line (without CRLF) and fill tree and header; raise _Reject on a rule break."""
    if len(line) <= 5:
        if not partial:
            raise _fail("proxy.v1.missing_field", base + len(line), 1,
                        "line ends right after 'PROXY'")
        return
    if line[5] != " ":
        raise _fail("proxy.v1.bad_separator", base + 5, 1,
                    f"'PROXY' must be followed by one space, not {line[5]!r}")
    fields = _split_fields(line, 6)
    proto, poff = fields[0]
    last_partial = partial and len(fields) == 1
    if proto == "":
        if last_partial:
            return
        if len(fields) == 1:
            raise _fail("proxy.v1.missing_field", base + poff, 1, "line ends before the protocol")
        raise _fail("proxy.v1.bad_separator", base + poff, 1,
                    "more than one space after 'PROXY'")
    if last_partial:
        if not any(p.startswith(proto) for p in PROTOCOLS):
            raise _fail("proxy.v1.bad_protocol", base + poff, len(proto),
                        f"protocol {proto!r} is not TCP4, TCP6 or UNKNOWN")
        return
    if proto not in PROTOCOLS:
        raise _fail("proxy.v1.bad_protocol", base + poff, len(proto),
                    f"protocol {proto!r} is not TCP4, TCP6 or UNKNOWN")
    if root is not None:
        root.add(item("proxy.v1.proto", proto, base + poff, len(proto), proto))
    h.family = proto
    if proto == "UNKNOWN":
        h.transport = "UNSPEC"
        rest_off = poff + len(proto)
        rest = line[rest_off:]
        if rest and root is not None:
            root.add(item("proxy.v1.unknown", escape_text(rest), base + rest_off, len(rest), rest))
        if not partial:
            experts.append(expert("proxy.v1.unknown", base + poff, len(proto)))
        return
    v6 = proto == "TCP6"
    words = _FIELDS[v6][1]
    for k in range(4):
        idx = k + 1
        if idx >= len(fields):
            if partial:
                return
            raise _fail("proxy.v1.missing_field", base + len(line), 1,
                        f"line ends before the {words[k]}")
        tok, off = fields[idx]
        is_last = partial and idx == len(fields) - 1
        if tok == "" and not is_last:
            raise _fail("proxy.v1.bad_separator", base + off, 1,
                        f"more than one space before the {words[k]}"
                        if idx < len(fields) - 1 else
                        f"line ends with a space where the {words[k]} should be")
        value = _endpoint_value(k, tok, base + off, root, experts, v6=v6, is_last=is_last)
        if value is None:
            return
        if k == 0:
            h.src_addr = value  # type: ignore[assignment]
        elif k == 1:
            h.dst_addr = value  # type: ignore[assignment]
        elif k == 2:
            h.src_port = value  # type: ignore[assignment]
        else:
            h.dst_port = value  # type: ignore[assignment]
    if len(fields) > 5:
        tok, off = fields[5]
        raise _fail("proxy.v1.extra_field", base + off - 1, len(line) - off + 1,
                    f"unexpected {line[off - 1:]!r} after the destination port")


def _endpoint_value(k: int, tok: str, at: int, root: Field | None, experts: list[Expert], *,
                    v6: bool, is_last: bool) -> str | int | None:
    """Token ``k`` (source address, destination address, source port, destination port)
    checked and drawn; None when it is the unfinished last token of a partial line (checked
    as far as it goes). Raises _Reject on a rule break."""
    names, words = _FIELDS[v6]
    what = words[k]
    if k < 2:
        if v6:
            dotted = _check_ipv6(tok, at, what, is_last)
            if dotted and not is_last:
                experts.append(expert("proxy.v1.ipv6_dotted", at, len(tok),
                                      f"{what} {tok!r} ends in dotted IPv4; the spec asks for "
                                      "hex groups (inet_pton-based receivers accept it)"))
        else:
            _check_ipv4(tok, at, what, is_last)
        if is_last:
            return None
        raw = inet_pton(AF_INET6 if v6 else AF_INET, tok)
        text = ipv6_text(raw) if v6 else ipv4_text(raw)
        if root is not None:
            root.add(item(names[k], text, at, len(tok), ip_value(raw)))
        return text
    port = _check_port(tok, at, what, is_last)
    if is_last:
        return None
    if root is not None:
        root.add(item(names[k], port, at, len(tok), port))
    return port


