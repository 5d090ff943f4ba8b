"""PROXY v1/v2: never raises; parsed whole or fed byte by byte, the answer is the same
(every prefix of a complete header NEEDs MORE, never a different verdict); with
``final=True`` NEED_MORE is never the answer; offsets of experts lie inside the input."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["pcapip", "common"]):
    from common import Broken

    from pcapip.dissect import ParseState, parse_proxy, proxy, proxy_tlv, proxy_v1, proxy_v2  # noqa: F401

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def test_one(data: bytes) -> None:
    whole = parse_proxy(data)
    tree = whole.tree
    quick = parse_proxy(data, tree=False)
    if (quick.state, quick.length, quick.codes) != (whole.state, whole.length, whole.codes):
        raise Broken("the parse with a tree and without it differ")
    if parse_proxy(data, final=True).state is ParseState.NEED_MORE:
        raise Broken("NEED_MORE with final=True")
    if whole.state is ParseState.OK:
        for k in range(whole.length):
            p = parse_proxy(data[:k])
            if p.state is not ParseState.NEED_MORE:
                raise Broken(f"prefix {k} of a {whole.length}-byte header: {p.state}")
    for e in whole.experts:
        if e.offset is not None and not 0 <= e.offset <= len(data):
            raise Broken(f"expert {e.code} at offset {e.offset}, outside the input")
    del tree


def seeds():
    yield b"PROXY TCP4 192.0.2.1 198.51.100.2 51234 80\r\nGET / HTTP/1.1\r\n"
    yield b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n"
    yield b"PROXY UNKNOWN\r\n"
    yield SIG + b"\x21\x11\x00\x0c\xc0\x00\x02\x01\xc6\x33\x64\x02\xc8\x22\x00\x50"
    yield SIG + b"\x20\x00\x00\x00"
    yield SIG + b"\x21\x21\x00\x27" + bytes(32) + b"\x01\x00\x03h2x"


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
