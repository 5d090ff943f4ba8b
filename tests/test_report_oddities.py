"""Every oddity is said out loud: capture warnings, packets that gave no flow, unchecked
spoofing, the TOA kinds in use. Real processes for the CLI (stderr lines, exit codes),
``Analysis`` for the API, tshark as the independent count where it can give one."""

from __future__ import annotations

import json
import os
import pty
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import pcapip
from pcapip.errors import CaptureError, CaptureWarning
from pcapip.report.notes import spoofing_line

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "tests" / "pcaps"
sys.path.insert(0, str(ROOT / "tests" / "gen"))

import oddity_pcaps as gen  # noqa: E402

TOA253 = PCAPS / "public" / "toa-253-bad-record-lengths.pcap"
TOA252 = PCAPS / "public" / "toa-252-alibaba-vpc.pcap"
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def run(*args: str | Path, stderr: int | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="250", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "pcapip", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr is None else stderr,
        cwd=ROOT,
        env=env,
        text=True,
        timeout=120,
    )


def lines(text: str, prefix: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(prefix)]


def tshark_count(path: Path, display_filter: str, *opts: str) -> tuple[int, int | None]:
    """(frames matching, number of the first) as tshark sees them (``opts``: e.g. ``-d``)."""
    out = subprocess.run(
        ["tshark", "-r", str(path), *opts, "-Y", display_filter, "-T", "fields", "-e",
         "frame.number"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return len(out), (int(out[0]) if out else None)


def odd_records(path: Path) -> list[tuple[int, int, int]]:
    """(packet, record offset, excess) of each pcap record claiming caplen > origlen, read
    from the record headers directly (little-endian classic pcap)."""
    raw = path.read_bytes()
    assert raw[:4] == b"\xd4\xc3\xb2\xa1"
    out, pos, k = [], 24, 0
    while pos + 16 <= len(raw):
        k += 1
        cap, orig = struct.unpack_from("<II", raw, pos + 8)
        if cap > orig:
            out.append((k, pos, cap - orig))
        pos += 16 + cap
    return out


# ---------------------------------------------------------------- capture warnings


def test_bad_record_lengths_reach_stderr_once_and_exit_0():
    odd = odd_records(TOA253)
    assert len(odd) > 1 and all(x == 16 for _, _, x in odd)
    first, offset, _ = odd[0]
    proc = run("analyze", TOA253, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    warned = lines(proc.stderr, "pcapip: warning: ")
    assert len(warned) == 1, proc.stderr
    assert warned[0].startswith(
        f"pcapip: warning: {TOA253}, packet {first}, byte offset {offset}: captured length "
    )
    assert warned[0].endswith(f"(and {len(odd) - 1} more packets like it)")
    table = run("analyze", TOA253, "--format", "table")
    assert table.returncode == 0
    header = table.stdout.split("Client address", 1)[0]
    assert f"warning: {TOA253}, packet {first}, byte offset {offset}: captured length" in header


def test_analysis_warnings_are_data():
    odd = odd_records(TOA253)
    a = pcapip.analyze(TOA253)
    assert a.warnings is a.table.warnings
    assert len(a.warnings) == 1
    w = a.warnings[0]
    assert isinstance(w, CaptureWarning)
    assert (w.file, w.packet, w.offset, w.more) == (str(TOA253), odd[0][0], odd[0][1], len(odd) - 1)
    assert w.kind == "caplen_gt_origlen"
    assert str(w).startswith(f"{TOA253}, packet {odd[0][0]}, byte offset {odd[0][1]}: ")
    assert a.errors == []


def test_every_record_odd_is_still_one_warning(tmp_path: Path):
    """A file where every record warns costs one summarised warning, not one per record."""
    frames = gen.handshake("192.0.2.10", "198.51.100.20", 40001, 80) * 1000
    path = gen.write(tmp_path / "lying.pcap", frames, extra_caplen=4)
    odd = odd_records(path)
    assert len(odd) == len(frames) == 5000
    a = pcapip.analyze(path)
    assert [(w.packet, w.offset, w.more) for w in a.warnings] == [(1, 24, 4999)]
    proc = run("analyze", path, "--format", "json")
    assert proc.returncode == 0
    assert len(lines(proc.stderr, "pcapip: warning: ")) == 1
    assert "(and 4999 more packets like it)" in proc.stderr


def test_capture_warning_text_has_the_capture_error_shape():
    w = CaptureWarning("x.pcap", 7, 1234, "odd", more=1)
    e = CaptureError("x.pcap", "odd", frame=7, offset=1234)
    assert str(w) == f"{e} (and 1 more packet like it)"
    assert str(CaptureWarning("x.pcap", None, 40, "odd")) == "x.pcap, byte offset 40: odd"


def test_empty_capture_says_so(tmp_path: Path):
    path = gen.write(tmp_path / "none.pcap", [])
    proc = run("analyze", path, "--format", "csv")
    assert proc.returncode == 0
    assert lines(proc.stderr, "pcapip: warning: ") == [
        f"pcapip: warning: {path}: the capture holds no packets"
    ]


# ---------------------------------------------------------------- packets that gave no flow


def test_unsupported_link_type_is_an_input_error():
    path = PCAPS / "unknown-linktype.pcap"
    proc = run("analyze", path, "--format", "csv")
    assert proc.returncode == 2
    assert lines(proc.stderr, "pcapip: error: ") == [
        f"pcapip: error: {path}, packet 1: none of its 3 packets could be decoded: "
        "link type 147 (USER0) not supported"
    ]
    table = run("analyze", path, "--format", "table")
    assert table.returncode == 2
    assert "3 of 3 packets not decoded: link type 147 (USER0) not supported" in table.stdout
    a = pcapip.analyze(path)
    assert a.undecoded == {"link type 147 (USER0) not supported": 3}
    assert [e.frame for e in a.errors] == [1]
    with pytest.raises(CaptureError, match="none of its 3 packets could be decoded"):
        pcapip.analyze(path, raise_on_damage=True)


@needs_tshark
def test_unopened_gre_only_capture_is_an_input_error(tmp_path: Path):
    path = gen.pptp_only(tmp_path / "pptp.pcap")
    n, first = tshark_count(path, "gre")
    assert n == 5
    proc = run("analyze", path, "--format", "csv")
    assert proc.returncode == 2
    assert lines(proc.stderr, "pcapip: error: ") == [
        f"pcapip: error: {path}, packet {first}: none of its {n} packets could be decoded: "
        "GRE tunnel (IP protocol 47, not opened)"
    ]


@needs_tshark
def test_tunnel_among_flows_is_a_warning_with_tsharks_count(tmp_path: Path):
    path = gen.tcp_and_gre(tmp_path / "mixed.pcap", gen.pptp_gre)
    n, first = tshark_count(path, "gre")
    total, _ = tshark_count(path, "frame")
    proc = run("analyze", path, "--format", "csv")
    assert proc.returncode == 0
    assert lines(proc.stderr, "pcapip: warning: ") == [
        f"pcapip: warning: {path}, packet {first}: {n} of {total} packets not analysed: "
        "GRE tunnel (IP protocol 47, not opened)"
    ]
    assert len(proc.stdout.splitlines()) == 1 + 2  # header + the two plain connections
    a = pcapip.analyze(path)
    assert a.stats["packets_undecoded"] == a.stats["packets_blind"] == n
    assert [w.kind for w in a.warnings] == ["undecoded"]


@needs_tshark
def test_vxlan_on_linux_port_is_named_and_opened_on_request(tmp_path: Path):
    path = gen.vxlan_only(tmp_path / "vxlan.pcap", port=8472)
    n, first = tshark_count(path, "udp.port == 8472")
    proc = run("analyze", path, "--format", "csv")
    assert proc.returncode == 0  # the outer UDP flow is analysed
    assert lines(proc.stderr, "pcapip: warning: ") == [
        f"pcapip: warning: {path}, packet {first}: {n} of {n} packets not analysed: "
        "VXLAN (Linux) (UDP port 8472, not opened: --vxlan-port 8472 opens it)"
    ]
    opened = run("analyze", path, "--format", "json", "--vxlan-port", "8472")
    assert opened.returncode == 0 and lines(opened.stderr, "pcapip: warning: ") == []
    inner = tshark_count(path, "tcp", "-d", "udp.port==8472,vxlan")[0]
    [row] = [json.loads(x) for x in opened.stdout.splitlines()]
    assert (row["egress_ip"], row["tunnel"], row["packets"]) == ("192.0.2.10", "vxlan:42", inner)


@needs_tshark
@pytest.mark.parametrize("make", ["gre_only", "vxlan_only"])
def test_gre_and_vxlan_connections_are_opened(tmp_path: Path, make: str):
    """The connection inside is analysed, as many packets as tshark finds TCP inside."""
    path = getattr(gen, make)(tmp_path / "t.pcap")
    inner, _ = tshark_count(path, "tcp")
    proc = run("analyze", path, "--format", "json")
    assert proc.returncode == 0 and lines(proc.stderr, "pcapip: warning: ") == []
    [row] = [json.loads(x) for x in proc.stdout.splitlines()]
    assert row["tunnel"] == ("gre" if make == "gre_only" else "vxlan:42")
    assert (row["egress_ip"], row["origin_port"], row["packets"]) == ("192.0.2.10", 80, inner)


@needs_tshark
def test_ordinary_noise_is_counted_in_the_report_not_warned(tmp_path: Path):
    path = gen.tcp_and_noise(tmp_path / "noise.pcap")
    n_arp, _ = tshark_count(path, "arp")
    n_icmp6, _ = tshark_count(path, "icmpv6")
    total, _ = tshark_count(path, "frame")
    proc = run("analyze", path, "--format", "csv")
    assert proc.returncode == 0
    assert lines(proc.stderr, "pcapip: warning: ") == []
    table = run("analyze", path, "--format", "table")
    expect = f"{n_arp + n_icmp6} of {total} packets not TCP/UDP: ARP {n_arp}, ICMPv6 {n_icmp6}"
    assert expect in table.stdout
    a = pcapip.analyze(path)
    assert a.undecoded == {"ARP": n_arp, "ICMPv6": n_icmp6}
    assert a.stats["packets_undecoded"] == n_arp + n_icmp6 and a.stats["packets_blind"] == 0


@needs_tshark
def test_a_capture_of_noise_only_warns_and_exits_0(tmp_path: Path):
    path = gen.noise_only(tmp_path / "arp.pcap")
    n, _ = tshark_count(path, "arp")
    proc = run("analyze", path, "--format", "csv")
    assert proc.returncode == 0
    assert lines(proc.stderr, "pcapip: warning: ") == [
        f"pcapip: warning: {path}, packet 1: none of its {n} packets is TCP/UDP: ARP"
    ]


@needs_tshark
def test_reasons_in_a_mixed_capture_match_tshark():
    path = PCAPS / "eth-mixed-us-le.pcap"
    a = pcapip.analyze(path)
    for label, flt in (("ARP", "arp"), ("LLDP", "lldp"), ("ICMPv6", "icmpv6 && !ipv6.fragment")):
        assert a.undecoded[label] == tshark_count(path, flt)[0], label
    assert sum(a.undecoded.values()) == a.stats["packets_undecoded"]


# ---------------------------------------------------------------- spoofing not checked


def test_unchecked_spoofing_names_the_announcers():
    path = PCAPS / "flow-spoof.pcap"
    a = pcapip.analyze(path)
    f = a.flows
    carried = f[f["method"].isin(["toa", "ppv1", "ppv2"]) | f["status"].eq("malformed")]
    assert a.announcers == carried["egress_ip"].astype(str).value_counts().to_dict()
    assert a.stats["announcers"] == len(a.announcers) == 2
    top = list(a.announcers)
    table = run("analyze", path, "--format", "table")
    assert (
        f"Spoofing not checked (no --trusted): clients were announced by {top[0]}, {top[1]} "
        f"— e.g. --trusted {top[0]},{top[1]}"
    ) in table.stdout
    checked = run("analyze", path, "--format", "table", "--trusted", "192.0.2.0/24")
    assert "Spoofing not checked" not in checked.stdout
    assert pcapip.analyze(path, trusted="192.0.2.0/24").table.trusted_checked


def test_spoofing_line_shortens_long_lists():
    many = {f"10.0.0.{i}": 10 - i for i in range(10)}
    assert spoofing_line(many) == (
        "Spoofing not checked (no --trusted): clients were announced by 10.0.0.0, 10.0.0.1, "
        "10.0.0.2 (7 more) — e.g. --trusted 10.0.0.0,10.0.0.1,10.0.0.2,…"
    )
    assert spoofing_line({}) is None


def test_spoofing_note_on_stderr_only_for_a_person():
    """csv on stdout: the note goes to stderr when stderr is a terminal, not into logs."""
    path = PCAPS / "haproxy-v1.pcap"
    piped = run("analyze", path, "--format", "csv")
    assert piped.returncode == 0 and "Spoofing" not in piped.stderr
    master, slave = pty.openpty()
    try:
        proc = run("analyze", path, "--format", "csv", stderr=slave)
        os.close(slave)
        slave = -1
        got = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert proc.returncode == 0
    text = got.decode()
    assert "pcapip: note: Spoofing not checked (no --trusted): clients were announced by " in text
    assert "10.77.2.1" in text


# ---------------------------------------------------------------- TOA kinds: once per capture


@needs_tshark
def test_toa_kind_is_a_summary_line_not_a_finding():
    path = PCAPS / "flow-toa.pcap"
    a = pcapip.analyze(path)
    assert "toa.kind" not in set(a.findings["code"])
    streams = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "tcp.option_kind == 200 && tcp.option_len == 8",
         "-T", "fields", "-e", "tcp.stream"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert [(t.kind, t.length, t.variant, t.flows) for t in a.toa_kinds] == [
        (200, 8, "tencent-ipv4", len(set(streams)))
    ]
    table = run("analyze", path, "--format", "table")
    assert "TOA kinds seen: 200 (8 bytes, tencent-ipv4; read by Tencent Cloud toa.ko" in table.stdout
    assert f"on {len(set(streams))} flows" in table.stdout


def test_fail_on_info_no_longer_trips_on_every_toa_flow():
    proc = run("analyze", TOA252, "--format", "csv", "--fail-on", "info")
    assert proc.returncode == 0, proc.stdout
    rows = proc.stdout.splitlines()
    assert len(rows) == 2 and rows[1].endswith(",ok,,,")  # one TOA flow: no findings, tunnel, rule


def test_toa_counters_only_where_toa_is_in_play():
    no_toa = PCAPS / "haproxy-v1.pcap"
    title = "Handshakes (like /proc/net/toa_stats)"
    assert title not in run("analyze", no_toa, "--format", "table").stdout
    assert title in run("analyze", no_toa, "--format", "table", "--toa-kind", "200").stdout
    assert title in run("analyze", TOA252, "--format", "table").stdout


@pytest.mark.parametrize("name", ["toa-variants.pcap", "flow-toa.pcap", "dissect-toa-edge.pcap"])
def test_toa_kinds_agree_between_the_compiled_and_the_per_packet_paths(name: str):
    """The TOA kind column is filled by two implementations (flow-table columns and the
    per-packet rules): they must tell the same story."""
    from flowpaths import flow_path

    from pcapip import analyze

    fast = analyze(PCAPS / name)
    with flow_path("rules"):  # every packet through the per-packet rules
        ref = analyze(PCAPS / name)
    assert fast.toa_kinds == ref.toa_kinds
    assert sum(t.flows for t in fast.toa_kinds) == fast.stats["flows_with_toa"] > 0
