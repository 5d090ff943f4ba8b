"""Capture readers fed as a stream: ``open_capture("-")`` on a pipe, the path ``pcapip analyze -``
takes (``tcpdump -w - | pcapip analyze -``): no seeking, no size, and reads that return as
soon as some bytes are there.

Input: 4 bytes of chunk plan, then the capture (pcap, pcapng, gzip of either, or anything).
A writer thread feeds the capture into a pipe that stands in for stdin in chunks the plan
sizes (the first 64 chunks one at a time, each written only once the reader has drained the
pipe, so pcapip really sees short reads; the rest at once), and the reader is pcapip's own
stdin path. Invariants: only pcapip's errors escape; the frames (number, byte offset,
timestamp, lengths, link type, interface, bytes), the warnings and the damage (frame number,
byte offset, message) equal those of the same bytes read as a file, one big read at a time;
the format and compression detected are the same. One exception, by design: gzip data that
is corrupt (not merely cut off) loses the output of the decompression step that fails
(``pcapip/sources/stream.py``), and how much a step holds depends on how the compressed
bytes arrived; then the frames of one read must be a prefix of the other's and both must
end in damage (``tests/pcaps/fuzz/stdin-gzip-corrupt-step.bin``: as a file the very first
step fails, "corrupt gzip data"; as a stream the bytes before the damage come out first and
are not a capture). The file is read as ``open_capture`` reads
it (auto backend); the stream walks its records in pure Python or compiled, as the plan's
first bit says.
"""

from __future__ import annotations

import array
import fcntl
import gzip
import os
import sys
import termios
import threading

import atheris

with atheris.instrument_imports(include=["pcapip", "common"]):
    from common import PCAPS, Broken, scratch

    from pcapip.errors import CaptureError
    from pcapip.sources import capture, open_capture, pcap, pcapng, stream, walk  # noqa: F401

PLAN = 4  # bytes of chunk plan before the capture
GATED = 64  # chunks written one at a time, each after the reader drained the pipe


def chunk_sizes(plan: bytes) -> list[int]:
    """1 to 16,257 bytes per chunk, small sizes likelier (byte b: 1 + b*b/4)."""
    return [1 + b * b // 4 for b in plan] or [1 << 16]


def _pending(fd: int) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


def _feed(wfd: int, rfd: int, data: bytes, sizes: list[int], stop: threading.Event) -> None:
    """Write ``data`` into the pipe in chunks; close the write end at the end (EOF)."""
    try:
        pos = k = 0
        while pos < len(data) and not stop.is_set():
            n = sizes[k % len(sizes)] if k < GATED else len(data) - pos
            end = min(pos + n, len(data))
            while pos < end and not stop.is_set():
                pos += os.write(wfd, data[pos:end])
            k += 1
            while k < GATED and not stop.is_set() and _pending(rfd):
                stop.wait(0.00002)
    finally:
        os.close(wfd)


class _Stdin:
    """What ``sys.stdin`` is while pcapip reads: the pipe's read end."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd


def read(path: str, stdin_fd: int | None = None, backend: str | None = None) -> dict:
    """Everything pcapip reports reading ``path`` (``-``: from ``stdin_fd``)."""
    out: dict = {"frames": [], "error": None, "warnings": None, "format": None}
    saved, src = sys.stdin, None
    if stdin_fd is not None:
        sys.stdin = _Stdin(stdin_fd)  # type: ignore[assignment]
    try:
        src = open_capture(path, batch_size=7, chunk_size=4096, backend=backend)
        out["format"] = (src.format, src.compressed)
        for b in src:
            for i in range(len(b)):
                out["frames"].append(
                    (int(b.first_frame) + i, int(b.file_offset[i]), int(b.ts_ns[i]),
                     int(b.caplen[i]), int(b.origlen[i]), int(b.linktype[i]),
                     int(b.iface[i]), b.frame_bytes(i))
                )  # fmt: skip
    except CaptureError as exc:
        out["error"] = (exc.frame, exc.offset, exc.message)
    finally:
        sys.stdin = saved
        if src is not None:
            out["warnings"] = [
                (w.packet, w.offset, w.message, w.more, w.kind) for w in src.warnings
            ]
            src.close()
    return out


def read_stream(data: bytes, sizes: list[int], backend: str | None = None) -> dict:
    rfd, wfd = os.pipe()
    stop = threading.Event()
    writer = threading.Thread(target=_feed, args=(wfd, rfd, data, sizes, stop), daemon=True)
    writer.start()
    try:
        return read("-", rfd, backend)
    finally:
        stop.set()  # pcapip may stop early (damage): drain so the writer ends, then close
        while os.read(rfd, 1 << 16):
            pass
        writer.join()
        os.close(rfd)


def _gzip_step_lost(whole: dict, piped: dict) -> bool:
    """Either read met corrupt compressed data (not merely a cut-off stream)."""
    for out in (whole, piped):
        message = out["error"][2] if out["error"] else ""
        if message.startswith("corrupt gzip data") and not message.endswith("ends early"):
            return True
    return False


def test_one(data: bytes) -> None:
    plan, cap = data[:PLAN], data[PLAN:]
    whole = read(scratch(cap))
    # the stream walks its records in pure Python or compiled, as the plan's first bit says
    backend = "pure" if plan[:1] and plan[0] & 1 else None
    piped = read_stream(cap, chunk_sizes(plan), backend)
    a, b = whole["frames"], piped["frames"]
    if _gzip_step_lost(whole, piped):
        # a decompression step that fails loses its output (stream.py), and how much input
        # a step holds depends on how the compressed bytes arrived: then one read's frames
        # are a prefix of the other's, and both end in damage
        short, long_ = (a, b) if len(a) <= len(b) else (b, a)
        if long_[: len(short)] != short or not (whole["error"] and piped["error"]):
            raise Broken(f"corrupt gzip: as a file {whole['error']}, as a stream {piped['error']}")
        return
    for key in ("format", "error", "warnings"):
        if whole[key] != piped[key]:
            raise Broken(f"{key}: as a file {whole[key]!r}, as a stream {piped[key]!r}")
    if a != b:
        n = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
        raise Broken(f"frames differ from frame {n + 1}: {len(a)} as a file, {len(b)} as a stream")


def seeds():
    plans = (b"\x00\x00\x00\x00", b"\x01\x03\x07\x0f", b"\x10\x40\x80\xff", b"\xff\xff\xff\xff")
    for k, p in enumerate(sorted(PCAPS.glob("*.pcap*"))):
        data = p.read_bytes()
        if len(data) < 100_000:
            yield plans[k % len(plans)] + data
            if k % 8 == 0 and data[:2] != b"\x1f\x8b":  # some gzip-compressed too
                yield plans[(k + 1) % len(plans)] + gzip.compress(data, mtime=0)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
