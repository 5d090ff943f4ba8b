"""Entry point of the PROXY protocol dissector: detect the version, then parse.

Detection follows the spec: the 12-byte v2 signature plus the version byte,
or the 5 characters ``PROXY`` for v1. Anything that is still a prefix of one
of those is NEED_MORE (a header split over TCP segments is common), anything
that can no longer become one is NOT_PROXY.
"""

from __future__ import annotations

from pcapip.dissect.codes import expert
from pcapip.dissect.hf import subtree
from pcapip.dissect.proxy_model import FIXED, SIGNATURE, ParseState, ProxyParse
from pcapip.dissect.proxy_v1 import MAGIC as V1_MAGIC
from pcapip.dissect.proxy_v1 import MIN_LINE, parse_v1

MAX_HEADER = FIXED + 0xFFFF


def parse_proxy(data: bytes | memoryview, *, base_offset: int = 0,
                final: bool = False, tree: bool = True) -> ProxyParse:
    """Parse a PROXY header at the start of ``data``; never raises.

    ``data`` is the start of a TCP stream (proxy to origin) or one UDP
    datagram's payload. ``base_offset`` is added to every offset in the tree
    and experts. With ``final=True`` no more bytes will come (a UDP datagram,
    a stream that ended): an incomplete header is then MALFORMED
    (``proxy.truncated``) instead of NEED_MORE. ``tree=False`` draws no field tree
    (``tree`` is None): the same rules, header, experts and length, at a fraction of
    the cost, for the flow stage, which keeps nothing else.
    """
    try:
        # never copy more than the largest possible header (v2: 16 + 65535 bytes)
        return _parse(bytes(data[:MAX_HEADER]), base_offset, final and len(data) <= MAX_HEADER,
                      tree)
    except Exception as exc:  # a dissector bug must not take the analysis down
        e = expert("dissect.internal_error", base_offset, len(data),
                   f"PROXY dissector failed: {type(exc).__name__}: {exc}")
        return ProxyParse(ParseState.MALFORMED, experts=[e])


def _parse(data: bytes, base: int, final: bool, tree: bool) -> ProxyParse:
    n = len(data)
    if n == 0:
        if final:
            return ProxyParse(ParseState.NOT_PROXY)
        return ProxyParse(ParseState.NEED_MORE, need=MIN_LINE)
    if data[:12] == SIGNATURE[:n]:
        if n >= 13:
            from pcapip.dissect.proxy_v2 import parse_v2  # (a v1 capture never loads it)

            return parse_v2(data, base, final, tree)
        return _short(n, FIXED - n, base, final, "v2 signature",
                      data if n >= 6 and tree else None)
    if data[:5] == V1_MAGIC[:n]:
        if n >= 5:
            return parse_v1(data, base, final, tree)
        return _short(n, MIN_LINE - n, base, final, "'PROXY'")
    return ProxyParse(ParseState.NOT_PROXY)


def _short(n: int, need: int, base: int, final: bool, what: str,
           shown: bytes | None = None) -> ProxyParse:
    """Too few bytes to decide; ``shown`` (a long enough v2 signature start) gets a tree."""
    tree = None
    if shown is not None:
        tree = subtree("proxy", base, n)
        tree.add(subtree("proxy.v2.magic", base, n, shown, more=f" (partial): {shown.hex()}"))
    if final:
        e = expert("proxy.truncated", base, n, f"data ends after {n} bytes of a {what}")
        state, need = ParseState.MALFORMED, 0
    else:
        e = expert("proxy.incomplete", base, n,
                   f"{n} bytes match the start of a {what}: need at least {need} more")
        state = ParseState.NEED_MORE
    if tree is not None:
        tree.experts.append(e)
    return ProxyParse(state, need=need, tree=tree, experts=[e])
