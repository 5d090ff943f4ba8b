"""Capture readers (pcap, pcapng, gzip): any bytes give frames and at most one CaptureError,
whose byte offset lies inside the input, and frames that lie inside it too."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["pcapip", "common"]):
    from common import PCAPS, Broken, scratch

    from pcapip.errors import CaptureError
    from pcapip.sources import capture, open_capture, pcap, pcapng, stream, walk  # noqa: F401


def test_one(data: bytes) -> None:
    path = scratch(data)
    gz = data[:2] == b"\x1f\x8b"
    try:
        with open_capture(path, batch_size=64, chunk_size=4096) as src:
            for batch in src:
                if not gz and len(batch) and int((batch.file_offset + batch.caplen).max()) > len(data):
                    raise Broken("a frame reaches past the input's end")
                if (batch.caplen < 0).any() or (batch.caplen > batch.origlen.clip(min=batch.caplen)).any():
                    raise Broken("a negative captured length")
    except CaptureError as exc:
        if not gz and exc.offset is not None and not 0 <= exc.offset <= len(data):
            raise Broken(f"damage reported at offset {exc.offset}, outside {len(data)} bytes") from None


def seeds():
    for p in sorted(PCAPS.glob("*.pcap*")):
        data = p.read_bytes()
        if len(data) < 200_000:
            yield data


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
