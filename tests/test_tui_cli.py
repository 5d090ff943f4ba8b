"""``pcapip tui`` as an operator runs it: the real command in a real terminal (tmux)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools import require_tool
from tui_pilot import Tmux

REPO = Path(__file__).resolve().parent.parent
PCAPS = REPO / "tests" / "pcaps"


def pcapip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pcapip", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_bad_input_is_one_line_and_status_2() -> None:
    r = pcapip("tui", "tests/pcaps/no-such.pcap")
    assert r.returncode == 2 and "tests/pcaps/no-such.pcap: no such file" in r.stderr
    r = pcapip("tui", "tests/pcaps/not-a-capture.pcap")
    assert r.returncode == 2 and "not-a-capture.pcap" in r.stderr
    assert "Traceback" not in r.stderr
    r = pcapip("tui", "--trusted", "10.0.0.0/99", "tests/pcaps/flow-toa.pcap")
    assert r.returncode == 2 and "--trusted" in r.stderr
    r = pcapip("tui", "-")
    assert r.returncode == 2 and "standard input" in r.stderr
    assert "tui" in pcapip("--help").stdout


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    require_tool("tmux")
    t = Tmux()
    try:
        yield t
    finally:
        t.kill()


def test_real_command_in_tmux(tmux: Tmux) -> None:
    """Open, filter, read the advice, quit: the screen text at each step, then exit status 0."""
    capture = "tests/pcaps/flow-proxy-misc.pcap"
    expected = list(
        csv.DictReader(io.StringIO(pcapip("analyze", capture, "--format", "csv").stdout))
    )
    rejected = [r for r in expected if "origin.rejected" in r["findings"]]
    assert len(rejected) >= 2
    tmux.start(f"cd {REPO} && {sys.executable} -m pcapip tui {capture}; echo EXIT=$?; sleep 60")
    tmux.wait(f"{len(expected)}/{len(expected)} flows")
    # the final rows: the status line and the rows it counts may reach the terminal a frame
    # apart (the provisional rows, still drawn, lack a flow that had not ended yet)
    want = [f"{r['egress_ip']}:{r['egress_port']}" for r in expected[:5]]
    deadline = time.monotonic() + 30
    while not all(w in (screen := tmux.screen()) for w in want) and time.monotonic() < deadline:
        time.sleep(0.1)
    for w in want:
        assert w in screen
    tmux.keys("/")
    tmux.keys("finding:origin-rejected", literal=True)
    tmux.keys("Enter")
    screen = tmux.wait(f"{len(rejected)}/{len(expected)} flows")
    table = [line for line in screen.splitlines() if "origin.rejected" in line]
    assert len(table) == len(rejected)
    for r in rejected:
        client = f"{r['client_ip']}:{r['client_port']}"
        assert any(client in line for line in table), (client, screen)
    tmux.keys("f")
    # (the detail follows the cursor's flow a moment after the filter: until then it may
    # still show the flow that was under the cursor before, with another finding's advice)
    screen = tmux.wait("Enable PROXY protocol on the origin")
    assert "What to do:" in screen and "origin.rejected" in screen
    tmux.keys("q")
    tmux.wait("EXIT=0")
