"""``pcapip live`` as a service: ring buffer files, an appended flow log reopened on SIGHUP,
SIGTERM ending cleanly, memory flat under a sustained stream.

Traffic is HTTP requests to a server this test starts on loopback; pcapip captures ``lo``
with dumpcap, filtered to that server's port.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from live_run import LiveRun
from tools import require_tool

from pcapip.flows.columns import COLUMNS

pytestmark = [pytest.mark.system, pytest.mark.slow]


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def _requests(port: int, n: int, pause: float = 0.0) -> None:
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            while s.recv(4096):
                pass
        if pause:
            time.sleep(pause)


def _analyze_csv(*captures: str) -> str:
    r = subprocess.run([sys.executable, "-m", "pcapip", "analyze", *captures, "--format", "csv"],
                       capture_output=True, text=True, check=True)
    return r.stdout


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_ring_buffer_keeps_the_newest_files(server: int, tmp_path: Path) -> None:
    """Files rotate by size; all kept: analyze over them is the live summary; files:2: only
    the newest two are left, numbered as dumpcap numbers them."""
    require_tool("dumpcap")
    for keep, name in ((0, "all"), (2, "two")):
        base = tmp_path / name / "ring.pcap"
        base.parent.mkdir()
        args = ["-i", "lo", "-f", f"tcp port {server}", "--duration", "6", "--format", "csv",
                "-w", str(base), "-b", "filesize:0.002", "-o", str(tmp_path / f"{name}.csv")]
        if keep:
            args += ["-b", f"files:{keep}"]
        with LiveRun(args) as run:
            run.wait_ready()
            _requests(server, 24, pause=0.12)
            assert run.wait(timeout=30) == 0, run.stderr
        files = sorted(str(p) for p in base.parent.iterdir())
        numbers = [int(Path(f).name.split("_")[1]) for f in files]
        if keep:
            assert len(files) == keep and numbers[0] > 1, files
            assert numbers == list(range(numbers[0], numbers[0] + keep))
        else:
            assert len(files) >= 4, files
            assert numbers == list(range(1, len(files) + 1))
            summary = (tmp_path / f"{name}.csv").read_text()
            assert _analyze_csv(*files) == summary
            assert len(_rows(summary)) == 24


def test_flow_log_appends_and_reopens_on_sighup(server: int, tmp_path: Path) -> None:
    """--flows FILE appends (an existing log is kept), SIGHUP after logrotate's move starts a
    new file with its own header, SIGTERM ends with the summary: every flow in one file or
    the other, once."""
    require_tool("dumpcap")
    log = tmp_path / "flows.csv"
    log.write_text(",".join(COLUMNS) + "\n")  # yesterday's log: kept, no second header
    args = ["-i", "lo", "-f", f"tcp port {server}", "--format", "csv", "--flows", str(log),
            "-o", str(tmp_path / "summary.csv")]
    with LiveRun(args) as run:
        run.wait_ready()
        _requests(server, 5)
        time.sleep(1.0)
        os.rename(log, tmp_path / "flows.csv.1")
        os.kill(run.proc.pid, signal.SIGHUP)  # as systemd's ExecReload: the main process
        run.wait_stderr("flow log reopened", timeout=10)
        _requests(server, 4)
        time.sleep(1.0)
        os.killpg(run.proc.pid, signal.SIGTERM)
        assert run.wait(timeout=30) == 0, run.stderr
    assert run.stdout == ""  # the lines went to the log
    old = (tmp_path / "flows.csv.1").read_text().splitlines()
    new = log.read_text().splitlines()
    assert old.count(",".join(COLUMNS)) == 1 and new[0] == ",".join(COLUMNS)
    lines = _rows("\n".join(old)) + _rows("\n".join(new))
    summary = _rows((tmp_path / "summary.csv").read_text())
    assert len(summary) == 9
    assert sorted(r["flow"] for r in lines) == sorted(r["flow"] for r in summary)
    assert len(_rows("\n".join(old))) == 5


def _rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_soak_memory_stays_flat(server: int, tmp_path: Path) -> None:
    """A sustained stream of connections for a while: RSS sampled after warm-up may not
    grow by more than a small margin while thousands of flows come and go."""
    require_tool("dumpcap")
    args = ["-i", "lo", "-f", f"tcp port {server}", "--format", "json", "--flows", os.devnull,
            "--max-flows", "2000"]
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            _requests(server, 20)

    with LiveRun(args) as run:
        run.wait_ready()
        workers = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for w in workers:
            w.start()
        samples = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 40:
            time.sleep(2)
            samples.append(_rss_kib(run.proc.pid))
        stop.set()
        for w in workers:
            w.join(10)
        os.killpg(run.proc.pid, signal.SIGTERM)
        assert run.wait(timeout=60) == 0, run.stderr
    print("soak: RSS KiB every 2 s:", samples)
    warm = samples[len(samples) // 4 :]
    growth = max(warm) - warm[0]
    assert growth < 30 * 1024, (samples, run.stderr[-2000:])
    flows = next(ln for ln in run.stderr.splitlines() if " flows (" in ln)
    print("soak:", flows)
    assert int(flows.split()[0]) > 2000, flows


def test_the_systemd_unit_runs(server: int, tmp_path: Path) -> None:
    """docs/systemd/pcapip-live.service's ExecStart, pointed at loopback and this test's
    folders, runs and writes its flow log and ring files."""
    import shlex

    require_tool("dumpcap")
    unit = (Path(__file__).resolve().parent.parent / "docs" / "systemd" / "pcapip-live.service")
    line = next(ln for ln in unit.read_text().splitlines() if ln.startswith("ExecStart="))
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv[0].endswith("/pcapip") and argv[1] == "live"
    args = argv[2:]
    swap = {"eth0": "lo", "/var/log/pcapip/flows.json": str(tmp_path / "flows.json"),
            "/var/lib/pcapip/ring.pcap": str(tmp_path / "ring.pcap"),
            "tcp port 80 or tcp port 443": f"tcp port {server}",
            "127.0.0.1:9877": "127.0.0.1:19878"}
    args = [swap.get(a, a) for a in args]
    with LiveRun([*args, "--duration", "4"]) as run:
        run.wait_ready()
        _requests(server, 3)
        assert run.wait(timeout=30) == 0, run.stderr
    flows = (tmp_path / "flows.json").read_text().splitlines()
    assert len(flows) == 3
    assert len(list(tmp_path.glob("ring_00001_*.pcap"))) == 1
    assert "metrics at http://127.0.0.1:19878/metrics" in run.stderr


def test_a_full_temporary_directory_is_said_while_capturing(server: int, tmp_path: Path) -> None:
    """With TMPDIR on a filesystem that fills up (a 64 KiB tmpfs the test mounts), the rows
    of ended flows stay in memory, and ``pcapip live`` says so while it captures, once:
    a service should not grow for hours before its summary says why."""
    require_tool("dumpcap")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    said = f"warning: {tiny}: pcapip's temporary files could not be written here"
    args = ["-i", "lo", "-f", f"tcp port {server}", "--format", "json", "--flows", os.devnull]
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            _requests(server, 20)

    try:
        with LiveRun(args, env={**os.environ, "TMPDIR": str(tiny)}) as run:
            run.wait_ready()
            workers = [threading.Thread(target=load, daemon=True) for _ in range(4)]
            for w in workers:
                w.start()
            try:
                run.wait_stderr(said, timeout=120)  # (a few thousand flows fill 2 MiB)
                running = run.proc.poll() is None
            finally:
                stop.set()
                for w in workers:
                    w.join(10)
            os.killpg(run.proc.pid, signal.SIGTERM)
            assert run.wait(timeout=60) == 0, run.stderr
    finally:
        subprocess.run(["umount", str(tiny)], check=True)
    assert running  # said while capturing, not only in the summary
    lines = [line for line in run.stderr.splitlines() if said in line]
    assert len(lines) == 1 and "(No space left on device)" in lines[0], run.stderr[-3000:]
