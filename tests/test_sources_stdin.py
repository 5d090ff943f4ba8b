"""``-`` reads a capture from stdin: piped, gzip-compressed, and live (incrementally)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from engine_ref import PCAPS, read_capture
from tools import require_tool

from pcapip.sources import open_capture

REPO = Path(__file__).resolve().parent.parent
READER = (
    "import hashlib, sys\n"
    "from pcapip.sources import open_capture\n"
    "from pcapip.decode import decode\n"
    "h = hashlib.sha256(); n = 0\n"
    "with open_capture('-') as src:\n"
    "    for b in src:\n"
    "        decode(b)\n"
    "        for i in range(len(b)):\n"
    "            h.update(b.frame_bytes(i)); h.update(int(b.ts_ns[i]).to_bytes(8, 'little'))\n"
    "        n += len(b)\n"
    "    print(src.format, src.compressed, n, h.hexdigest())\n"
)


def expected(path: Path) -> str:
    import hashlib

    r = read_capture(path)
    h = hashlib.sha256()
    for f, t in zip(r.frames, r.ts_ns.tolist(), strict=True):
        h.update(f)
        h.update(int(t).to_bytes(8, "little"))
    return f"{len(r.frames)} {h.hexdigest()}"


def run_reader(stdin) -> str:
    out = subprocess.run(
        [sys.executable, "-c", READER],
        stdin=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize(
    "name,fmt,gz",
    [
        ("eth-mixed-us-le.pcap", "pcap", False),
        ("multi-section.pcapng", "pcapng", False),
        ("multi-section.pcapng.gz", "pcapng", True),
    ],
)
def test_pipe_on_stdin(name: str, fmt: str, gz: bool):
    path = PCAPS / name
    cat = subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)
    try:
        got = run_reader(cat.stdout)
    finally:
        cat.stdout.close()
        cat.wait()
    assert got == f"{fmt} {gz} {expected(path)}"


def test_regular_file_redirected_to_stdin():
    path = PCAPS / "sll2-ns-le.pcap"
    with open(path, "rb") as f:
        assert run_reader(f) == f"pcap False {expected(path)}"


@pytest.mark.system
def test_tcpdump_writing_to_a_pipe():
    """``tcpdump -w - | pcapip ... -``: tcpdump re-writes a capture onto stdout."""
    tcpdump = require_tool("tcpdump")
    path = PCAPS / "loopback-tcpdump.pcap"
    td = subprocess.Popen(
        [tcpdump, "-r", str(path), "-w", "-"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        got = run_reader(td.stdout)
    finally:
        td.stdout.close()
        td.wait()
    assert got == f"pcap False {expected(path)}"


def test_live_pipe_yields_before_the_writer_finishes(monkeypatch):
    """A batch must arrive as soon as complete records are in the pipe, not at EOF."""
    data = (PCAPS / "eth-mixed-us-le.pcap").read_bytes()
    clean = read_capture(PCAPS / "eth-mixed-us-le.pcap")
    first_part = data[: 24 + sum(16 + len(f) for f in clean.frames[:3]) + 7]  # 3 records + a bit
    rfd, wfd = os.pipe()
    reader_has_batch = threading.Event()
    writer_closed = threading.Event()

    def writer() -> None:
        os.write(wfd, first_part)
        reader_has_batch.wait(timeout=20)
        os.write(wfd, data[len(first_part) :])
        writer_closed.set()
        os.close(wfd)

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.FileIO(rfd, "rb", closefd=True)))
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        with open_capture("-") as src:
            it = iter(src)
            first = next(it)
            arrived_early = not writer_closed.is_set()
            reader_has_batch.set()
            rest = list(it)
    finally:
        reader_has_batch.set()
        t.join(timeout=20)
        sys.stdin.close()
    assert arrived_early
    assert len(first) == 3
    got = [first.frame_bytes(i) for i in range(len(first))]
    got += [b.frame_bytes(i) for b in rest for i in range(len(b))]
    assert got == clean.frames
