"""``pcapip live --tui`` on a real origin interface while HAProxy sends PROXY v1 and v2.

The real command runs in a terminal (tmux) inside the origin's network
namespace, captures on its veth for a bounded time, and must show every
connection HAProxy logged, with the client HAProxy logged for it, while the
capture still runs (provisional rows, no flow number yet), then the final
rows (numbered, read back from the recording) once the capture has ended.
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import peers
import pytest
from tools import require_tool
from tui_pilot import Tmux

pytestmark = [pytest.mark.system, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
ROUTES = ["v1", "v2", "noheader"]
CONNECTIONS = 2
DURATION = 8


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    require_tool("tmux")
    t = Tmux(width=140, height=40)
    try:
        yield t
    finally:
        t.kill()


def flow_number(line: str) -> str:
    """The "No." cell (after the one-character severity mark)."""
    m = re.match(r"^.\s*(\S+) ", line)
    assert m is not None, line
    return m.group(1)


def row_of(screen: str, egress_port: int) -> str | None:
    for line in screen.splitlines():
        if f"10.77.2.1:{egress_port} " in line:
            return line
    return None


def test_live_tui_shows_each_logged_client(tmp_path: Path, tmux: Tmux) -> None:
    peers.require_peers("dumpcap")
    record = tmp_path / "live.pcapng"
    with peers.Topology(tmp_path / "topo") as topo:
        peers.start_origins(topo, family=4)
        haproxy = peers.start_haproxy(topo, ROUTES, origin_family=4)
        prefix = " ".join(shlex.quote(a) for a in topo.command("origin", []))
        tmux.start(
            f"cd {shlex.quote(str(REPO))} && {prefix} {shlex.quote(sys.executable)} -m pcapip "
            f"live -i {peers.ORIGIN_IF} --tui --duration {DURATION} -w {shlex.quote(str(record))}"
            "; echo EXIT=$?; sleep 120"
        )
        tmux.wait("capturing on", timeout=20)
        started = time.monotonic()
        clients = []
        for name in ROUTES:
            clients += peers.drive_clients(topo, name, CONNECTIONS, family=4)
        assert all(c.error is None for c in clients), clients
        ports = {c.local_port for c in clients}
        records = [r for r in haproxy.wait_records(len(clients)) if r.client_port in ports]
        assert len(records) == len(clients)

        # while capturing: every logged connection is on screen with HAProxy's client
        deadline = started + DURATION - 1
        screen = ""
        while time.monotonic() < deadline:
            screen = tmux.screen()
            if all(row_of(screen, r.egress_port) for r in records):
                break
            time.sleep(0.1)
        assert time.monotonic() < started + DURATION, "rows only appeared after the capture"
        assert "capturing on" in screen, screen
        provisional = {}
        for r in records:
            line = row_of(screen, r.egress_port)
            assert line is not None, f"{r}\n{screen}"
            header = peers.ROUTES[r.route].header
            if header is peers.Header.NONE:
                assert " none " in line and " absent " in line, line
            else:
                assert f"{r.client_ip}:{r.client_port}" in line, line
                assert (" ppv1 " if header is peers.Header.V1 else " ppv2 ") in line, line
            # provisional rows already have the number analyze gives the flow
            provisional[r.egress_port] = flow_number(line)
            assert provisional[r.egress_port].isdigit(), line

        # after --duration: the recording is analysed, rows get their counters
        deadline = time.monotonic() + DURATION + 30
        while True:
            screen = tmux.screen()
            rows = [row_of(screen, r.egress_port) for r in records]
            if all(rows) and "reading" not in screen and " frames" in screen:
                break
            assert time.monotonic() < deadline, f"no final rows:\n{screen}"
            time.sleep(0.2)
        assert "reading" not in screen and " frames" in screen, screen
        for r in records:
            line = row_of(screen, r.egress_port)
            assert line is not None and flow_number(line) == provisional[r.egress_port], (r, screen)
            if peers.ROUTES[r.route].header is not peers.Header.NONE:
                assert f"{r.client_ip}:{r.client_port}" in line, line
        tmux.keys("q")
        tmux.wait("EXIT=0", timeout=15)
    assert record.stat().st_size > 0
