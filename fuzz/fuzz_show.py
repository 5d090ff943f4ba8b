"""``pcapip show``'s tree builder: any frame gives a tree, and every field's bytes lie
inside the frame."""

from __future__ import annotations

import struct
import sys

import atheris

with atheris.instrument_imports(include=["pcapip", "common"]):
    from common import LINKTYPES, Broken, frame_seeds

    from pcapip.dissect.frame import dissect_frame


def _fields(node):
    yield node
    for child in node.children or ():
        yield from _fields(child)


def test_one(data: bytes) -> None:
    if len(data) < 2:
        return
    lt = struct.unpack("<H", data[:2])[0]
    lt = lt if lt in LINKTYPES else LINKTYPES[lt % len(LINKTYPES)]
    frame = data[2:]
    tree = dissect_frame(frame, lt)
    roots = tree if isinstance(tree, list) else [tree]
    for root in roots:
        for f in _fields(root):
            off, n = f.offset or 0, f.length or 0
            if off < 0 or off + n > len(frame):
                raise Broken(f"field {f.name} at {off}+{n}, outside a {len(frame)}-byte frame")


seeds = frame_seeds


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
