"""What every fuzz target shares: the invariant that only pcapip's own errors escape, a
scratch file for entry points that read paths, and seed corpora from tests/pcaps."""

from __future__ import annotations

import os
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "tests" / "pcaps"
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from pcapip.decode import decode  # noqa: E402
from pcapip.decode.columns import ST_TRUNCATED  # noqa: E402
from pcapip.errors import PcapipError  # noqa: E402
from pcapip.sources.batch import FrameBatch  # noqa: E402


class Broken(AssertionError):
    """An invariant a target checks did not hold (a crash for the fuzzer)."""


def only_own_errors(fn: Callable[[], object]) -> object:
    """Run ``fn``; pcapip's own errors are answers, anything else is a crash."""
    try:
        return fn()
    except PcapipError:
        return None


def scratch(data: bytes, suffix: str = "") -> str:
    """``data`` in a file in memory (/dev/shm when there is one), rewritten each call."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    path = os.path.join(base, f"pcapip-fuzz-{os.getpid()}{suffix}")
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def frames(limit: int = 400) -> Iterator[tuple[int, bytes]]:
    """(link type, frame bytes) of the bundled captures: seeds for the frame targets."""
    from pcapip.sources import open_capture

    n = 0
    for path in sorted(PCAPS.glob("*.pcap*")):
        try:
            with open_capture(str(path)) as src:
                for batch in src:
                    for i in range(len(batch)):
                        yield int(batch.linktype[i]), batch.frame_bytes(i)
                        n += 1
                        if n >= limit:
                            return
        except PcapipError:
            continue


def frame_seed(linktype: int, frame: bytes) -> bytes:
    """A frame seed as the frame targets read their input: link type (2 bytes) + frame."""
    return struct.pack("<H", linktype & 0xFFFF) + frame


def frame_seeds() -> Iterator[bytes]:
    """The bundled captures' frames as frame-target inputs."""
    for lt, frame in frames():
        yield frame_seed(lt, frame)


def write_corpus(folder: Path, seeds: Iterator[bytes]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for k, data in enumerate(seeds):
        (folder / f"seed-{k:05d}").write_bytes(data)
        n += 1
    return n


# ---- frames: (link type, bytes) inputs of the decode, tunnel and show targets
LINKTYPES = (1, 0, 101, 108, 113, 276, 12, 14, 228, 229)

def batch_of(data: bytes) -> FrameBatch | None:
    if len(data) < 2:
        return None
    lt = struct.unpack("<H", data[:2])[0]
    lt = LINKTYPES[lt % len(LINKTYPES)] if lt not in LINKTYPES else lt
    frame = np.frombuffer(data[2:], dtype=np.uint8).copy()
    n = np.array([frame.size], dtype=np.int64)
    return FrameBatch(frame, np.zeros(1, dtype=np.int64), n, n.copy(),
                      np.zeros(1, dtype=np.int64), np.array([lt], dtype=np.int32),
                      np.zeros(1, dtype=np.int32), np.zeros(1, dtype=np.int64), 1)

def decode_both(data: bytes) -> None:
    """The pure and compiled decode loops on one (link type, frame) input: the same
    columns, offsets inside the frame."""
    b = batch_of(data)
    if b is None:
        return
    pure = decode(b, backend="pure")
    fast = decode(b, backend="compiled")
    for name in ("status", "proto", "src_lo", "dst_lo", "sport", "dport", "l4_off", "pay_off",
                 "pay_cap", "opt_off", "opt_len", "opt_flags", "tun_kind", "tun_id", "tcp_flags"):
        if not np.array_equal(getattr(pure, name), getattr(fast, name)):
            raise Broken(f"pure and compiled decode differ in {name}")
    cap = int(b.caplen[0])
    truncated = bool(int(pure.status[0]) & ST_TRUNCATED)
    for name in ("ip_off", "l4_off"):
        v = int(getattr(pure, name)[0])
        # a header that would start past a cut frame's end: flagged, and nothing read there
        if v > cap and not (truncated and int(pure.sport[0]) == int(pure.dport[0]) == 0):
            raise Broken(f"{name} {v} past the frame's {cap} bytes, not flagged as cut")
    # (the payload may start past a cut frame's end: then none of it was captured)
    pay_cap = int(pure.pay_cap[0])
    if pay_cap < 0 or (pay_cap and int(pure.pay_off[0]) + pay_cap > cap):
        raise Broken("captured payload reaches past the frame")
    if int(pure.opt_off[0]) > 0 and int(pure.opt_off[0]) > cap and pure.opt_flags[0] & 1:
        raise Broken("a TOA candidate flagged in options past the frame")

