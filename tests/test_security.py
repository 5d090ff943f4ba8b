"""The tool's own safety (SECURITY.md): no root for live capture, no writing through a planted
link, no half-written output under the real name, no evaluation of data from a capture."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PCAP = ROOT / "tests" / "pcaps" / "haproxy-v2.pcap"


def _pcapip(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pcapip", *args], capture_output=True,
                          text=True, timeout=120, **kw)


@pytest.mark.parametrize("command", [
    ["analyze", str(PCAP), "--format", "csv", "-o"],
    ["extract", str(PCAP), "--flow", "1", "-w"],
    ["wireshark-plugin", "-o"],
])
def test_outputs_refuse_a_planted_link_unless_forced(command: list[str], tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "out.file"
    link.symlink_to(victim)
    r = _pcapip(*command, str(link))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "is a symbolic link" in r.stderr and "--force" in r.stderr
    assert victim.read_text() == "precious\n"
    r = _pcapip(*command, str(link), "--force")
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and victim.read_bytes() != b"precious\n"  # written through it
    assert not list(tmp_path.glob("*.partial"))


def test_wireshark_install_refuses_a_planted_link(tmp_path: Path) -> None:
    home = tmp_path / "home"
    plugins = home / ".local" / "lib" / "wireshark" / "plugins"
    plugins.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (plugins / "pcapip_toa.lua").symlink_to(victim)
    env = {**os.environ, "HOME": str(home), "PATH": "/usr/bin/nonexistent"}
    r = _pcapip("wireshark-plugin", "--install", env=env)
    assert r.returncode == 2 and "is a symbolic link" in r.stderr, r.stderr
    assert victim.read_text() == "precious\n"


def test_a_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that dies half-way (a crash, a full disk): nothing under the output's name,
    no temporary file left, and an older file of that name untouched."""
    import pcapip
    from pcapip.report import export, write

    a = pcapip.analyze(str(PCAP))

    def dies(table, fh, rows=None):  # writes part of the CSV, then fails
        fh.write("flow,transport\n1,tcp\n")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "write_csv", dies)
    monkeypatch.setattr(write, "write_csv", dies)
    out = tmp_path / "flows.csv"
    with pytest.raises(pcapip.errors.PcapipError, match="No space left"):
        write.write_analysis(a, "csv", out)
    assert not out.exists() and not list(tmp_path.iterdir())
    out.write_text("yesterday\n")
    with pytest.raises(pcapip.errors.PcapipError):
        write.write_analysis(a, "csv", out)
    assert out.read_text() == "yesterday\n" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.system
def test_live_runs_unprivileged_with_dumpcaps_capabilities(tmp_path: Path) -> None:
    """As user nobody, with only CAP_NET_RAW/CAP_NET_ADMIN handed to dumpcap (what the
    systemd unit does); without them, one clear line and exit 2."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("dumpcap") is None:
        pytest.skip("needs root to drop to nobody, setpriv and dumpcap")
    out = Path(tempfile.mkdtemp(prefix="pcapip-nobody-", dir="/tmp"))  # (nobody can reach it)
    try:
        out.chmod(0o777)
        base = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        caps = ["--inh-caps=+net_raw,+net_admin", "--ambient-caps=+net_raw,+net_admin"]
        live = [sys.executable, "-m", "pcapip", "live", "-i", "lo", "--duration", "1.5",
                "--format", "csv", "-o", str(out / "summary.csv")]
        r = subprocess.run([*base, *caps, *live], capture_output=True, text=True, timeout=60,
                           cwd=ROOT)
        assert r.returncode == 0, r.stderr
        assert (out / "summary.csv").stat().st_uid != 0
        r = subprocess.run([*base, "--inh-caps=-all", *live], capture_output=True, text=True,
                           timeout=60, cwd=ROOT)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert any(ln.startswith("pcapip: error") for ln in r.stderr.splitlines()), r.stderr
    finally:
        shutil.rmtree(out)


def test_no_code_evaluates_data() -> None:
    """No eval, no unpickling, no YAML loading in pcapip; the one exec compiles code
    generated from the flow table's own layout (pcapip.flows.rowflow), never from input."""
    bad = []
    for path in sorted((ROOT / "pcapip").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            if name in ("eval", "pickle.loads", "pickle.load", "marshal.loads", "yaml.load"):
                bad.append(f"{rel}:{node.lineno} {name}")
            if name == "exec" and rel != "pcapip/flows/rowflow.py":
                bad.append(f"{rel}:{node.lineno} exec")
    assert not bad, bad
