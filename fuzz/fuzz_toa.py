"""The TCP option walk: any option bytes give a result (tree or not, the same TOAs), and
every TOA found lies inside the options."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["pcapip", "common"]):
    from common import Broken, frames

    from pcapip.dissect import dissect_tcp_options, tcp_options, toa_registry  # noqa: F401


def test_one(data: bytes) -> None:
    opts = data[:60]
    with_tree = dissect_tcp_options(opts, base_offset=34)
    without = dissect_tcp_options(opts, base_offset=34, build_tree=False)
    a = [(t.kind, t.length, t.offset, t.client_ip, t.client_port) for t in with_tree.options]
    b = [(t.kind, t.length, t.offset, t.client_ip, t.client_port) for t in without.options]
    if a != b:
        raise Broken(f"the walk with a tree and without it differ: {a} vs {b}")
    for kind, _length, offset, _ip, _port in a:
        if not 34 <= offset < 34 + len(opts):
            raise Broken(f"a TOA (kind {kind}) at offset {offset}, outside the options")


def seeds():
    for _, frame in frames():
        if len(frame) > 54:
            yield frame[54:94]
    yield bytes([200, 8, 0x1F, 0x90, 10, 0, 0, 1])
    yield bytes([254, 8, 0x1F, 0x90, 10, 0, 0, 1, 1, 1])


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
