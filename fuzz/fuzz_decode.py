"""The decode loop: its pure-Python twin and the compiled kernel give the same columns for
any frame (link type + bytes), and every offset they give lies inside the frame."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["pcapip", "common"]):
    from common import decode_both, frame_seeds

    from pcapip.decode import decoder, kernel, kernel_l4, kernel_tunnels  # noqa: F401


def test_one(data: bytes) -> None:
    decode_both(data)


seeds = frame_seeds


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
