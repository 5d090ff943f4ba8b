"""``pcapip live`` arguments that are refused before any capture starts, and ``--tui``.

Each must end with one ``pcapip: error:`` line and exit status 2, never a
traceback, and must not leave a capture tool running.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pcapip.cli.main import main
from pcapip.live.tools import CaptureTool, capture_argv

REPO = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pcapip", "live", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "needs an interface: -i IFACE"),
        (["-i", "lo", "--duration", "0"], "--duration must be more than 0"),
        (["-i", "lo", "--count", "0"], "--count must be at least 1"),
        (["-i", "lo", "--max-flows", "0"], "--max-flows must be at least 1"),
        (["-i", "lo", "--trusted", "10.0.0.0/33"], "--trusted: '10.0.0.0/33' is not"),
        (
            ["-i", "lo", "-w", "/nonexistent-dir/x.pcapng"],
            "directory /nonexistent-dir does not exist",
        ),
    ],
)
def test_refused_arguments(args: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["live", *args])
    assert exc.value.code == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pcapip: error:"), out.err
    assert message in lines[0]
    assert out.out == ""


def test_tui_without_the_tui_package(monkeypatch, capsys) -> None:
    # an install without tui/: none of pcapip.tui's modules imports, including those another
    # test module already imported at collection (tests/test_tui_state.py imports tui.live)
    for name in {"pcapip.tui", *(n for n in sys.modules if n.startswith("pcapip.tui."))}:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(SystemExit) as exc:
        main(["live", "-i", "lo", "--tui"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--tui needs pcapip's terminal UI" in err and "not installed" in err


def test_capture_argv_writes_the_capture_to_stdout() -> None:
    dc = capture_argv(
        CaptureTool("dumpcap", "/usr/bin/dumpcap"), "eth0", bpf="tcp port 443", count=5
    )
    assert dc[:3] == ["/usr/bin/dumpcap", "-i", "eth0"]
    assert dc[dc.index("-w") + 1] == "-" and "-n" in dc  # pcapng on stdout
    assert dc[dc.index("-f") + 1] == "tcp port 443" and dc[dc.index("-c") + 1] == "5"
    td = capture_argv(CaptureTool("tcpdump", "/usr/bin/tcpdump"), "eth0", bpf="tcp port 443")
    assert td[td.index("-w") + 1] == "-" and "-U" in td and "--immediate-mode" in td
    assert td[-1] == "tcp port 443"
