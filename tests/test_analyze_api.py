"""The Python API: pcapip.analyze(...) -> Analysis with typed pandas frames."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import pcapip
from pcapip.flows import findings as fnd
from pcapip.flows.columns import COLUMNS

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "tests" / "pcaps"
PUBLIC = PCAPS / "public"  # captures vendored from other projects (tests/pcaps/README.md)


@pytest.fixture(scope="module")
def misc() -> pcapip.Analysis:
    return pcapip.analyze(str(PCAPS / "flow-proxy-misc.pcap"))


def test_flows_frame_types(misc) -> None:
    f = misc.flows
    assert list(f.columns) == list(COLUMNS)
    assert str(f["start"].dtype) == "datetime64[ns, UTC]"
    assert str(f["end"].dtype) == "datetime64[ns, UTC]"
    for c in ("egress_port", "origin_port", "client_port", "proxy_port"):
        assert str(f[c].dtype) == "UInt16", c
    for c in ("transport", "egress_ip", "origin_ip", "method", "status", "pp_command", "pp_family"):
        assert f[c].dtype.name == "category", c
    assert (f["end"] >= f["start"]).all()
    assert f["client_port"].isna().sum() == f["client_ip"].isna().sum()


def test_egress_and_clients_frames(misc) -> None:
    f = misc.flows
    e = misc.egress
    assert set(e.egress_ip) == set(f.egress_ip.astype(str))
    assert e.flows.sum() == len(f)
    row = e[e.egress_ip == "192.0.2.10"].iloc[0]
    sub = f[f.egress_ip == "192.0.2.10"]
    assert row.clients == sub.client_ip.nunique()
    assert set(row.methods.split(",")) == set(sub.method.astype(str))
    assert row.first_seen == sub.start.min() and row.last_seen == sub.end.max()
    c = misc.clients
    assert c.flows.sum() == f.client_ip.notna().sum()
    assert (c.egress_count >= 1).all()


def test_findings_frame(misc) -> None:
    fs = misc.findings
    assert list(fs.columns) == ["flow", "capture", "packet", "severity", "code", "message"]
    assert set(fs.code.astype(str)) <= set(fnd.CATALOGUE)
    for r in fs.itertuples():
        assert r.severity == fnd.CATALOGUE[r.code].level.label
    # every code in a flow's column has a row, and only those
    for flow in misc.flows.itertuples():
        codes = set(filter(None, str(flow.findings).split(";")))
        assert codes == set(fs[fs.flow == flow.flow].code.astype(str))


def test_stats_counts_are_consistent(misc) -> None:
    s = misc.stats
    f = misc.flows
    assert s["flows"] == len(f)
    assert sum(s[f"method_{m}"] for m in ("toa", "ppv1", "ppv2", "none", "unknown")) == len(f)
    assert s["packets"] == f.packets.sum()  # every packet of this capture belongs to a flow
    # toa_stats view: every handshake that completed is counted once
    hs = s["syn_recv_sock_toa"] + s["syn_recv_sock_no_toa"]
    assert 0 < hs <= s["flows_tcp"]


def test_toa_stats_view() -> None:
    a = pcapip.analyze(PCAPS / "flow-toa.pcap")
    # flows 1, 7, 8 carry TOA in the handshake ACK; 2..6 do not (SYN only, data only, bad, none)
    assert a.stats["syn_recv_sock_toa"] == 3
    assert a.stats["syn_recv_sock_no_toa"] == 5
    assert a.stats["toa_in_syn"] == 4  # flows 1, 2, 5, 8 (flow 4's is malformed: no client)


def test_exports_round_trip(misc, tmp_path: Path) -> None:
    p = tmp_path / "x.parquet"
    misc.to_parquet(p)
    back = pd.read_parquet(p)
    pd.testing.assert_frame_equal(back, misc.flows)
    text = misc.to_csv()
    assert text.splitlines()[0] == ",".join(COLUMNS)
    assert len(text.splitlines()) == len(misc.flows) + 1
    misc.to_csv(tmp_path / "x.csv")
    assert (tmp_path / "x.csv").read_text() == text
    assert len(misc.to_jsonl().splitlines()) == len(misc.flows)


def test_several_captures_and_their_findings() -> None:
    paths = [PCAPS / "flow-toa.pcap", PCAPS / "flow-spoof.pcap"]
    a = pcapip.analyze(paths)
    assert len(a.flows) == len(pcapip.analyze(paths[0]).flows) + len(pcapip.analyze(paths[1]).flows)
    assert set(a.findings.capture.astype(str)) <= {str(p) for p in paths}


def test_damage_is_kept_not_raised() -> None:
    a = pcapip.analyze(PCAPS / "bad-truncated-last.pcap")
    assert len(a.flows) == 1 and len(a.errors) == 1
    assert a.errors[0].frame == 6
    with pytest.raises(pcapip_errors().CaptureError):
        pcapip.analyze(PCAPS / "bad-truncated-last.pcap", raise_on_damage=True)


def pcapip_errors():
    import pcapip.errors

    return pcapip.errors


def test_ndpi_capture_as_its_readme_says() -> None:
    path = PUBLIC / "ndpi-haproxy.pcap"
    f = pcapip.analyze(path).flows
    assert len(f) == 1
    r = f.iloc[0]
    assert (r.egress_ip, r.egress_port, r.origin_ip, r.origin_port) == (
        "1.1.1.1",
        48502,
        "2.2.2.2",
        443,
    )
    assert r.method == "ppv1" and (r.client_ip, r.client_port) == ("11.111.11.111", 52176)
    assert (r.proxy_ip, r.proxy_port) == ("222.222.222.22", 443)
    assert "flow.mid_stream" in r.findings.split(";")


@pytest.mark.parametrize(
    ("name", "client", "kind"),
    [
        ("toa-254-250-alibaba-slb.pcap", ("59.82.47.36", 27812), 254),
        ("toa-252-alibaba-vpc.pcap", ("10.2.154.20", 50318), 252),
    ],
)
def test_public_toa_captures(name: str, client, kind: int) -> None:
    path = PUBLIC / name
    a = pcapip.analyze(path)
    f = a.flows
    assert len(f) == 1
    assert f.method[0] == "toa" and (f.client_ip[0], f.client_port[0]) == client
    assert [(t.kind, t.flows) for t in a.toa_kinds] == [(kind, 1)]
    assert "toa.kind" not in set(a.findings.code)


def test_import_is_cheap() -> None:
    code = "import sys, pcapip; print(sorted(m for m in ('pandas','numpy','numba') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_catalogue_is_complete_and_documented() -> None:
    import re

    src = "\n".join(p.read_text() for p in (ROOT / "pcapip" / "flows").glob("*.py"))
    emitted = set(
        re.findall(r'"((?:client|toa|proxy|origin|udp|capture|stream|flow)\.[a-z0-9_.]+)"', src)
    )
    dissector_codes = set(__import__("pcapip.dissect.codes", fromlist=["CODES"]).CODES)
    emitted -= dissector_codes - set(fnd.CATALOGUE)  # dissector codes only mapped, never emitted
    assert emitted <= set(fnd.CATALOGUE), emitted - set(fnd.CATALOGUE)
    for k in fnd.CATALOGUE.values():
        assert k.title and k.meaning and k.fix and isinstance(k.level, fnd.Level)
