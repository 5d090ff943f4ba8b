"""Flow stage against captures built to carry known clients and known faults.

tests/gen/flow_pcaps.py records, for every connection it writes, what it was
built to announce and which findings it must (or must not) raise; both the
fast path and the per-packet reference path must agree with that.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from flowpaths import flow_path
from gen import flow_pcaps as gen

from pcapip import analyze
from pcapip.flows.findings import CATALOGUE

HERE = Path(__file__).resolve().parent
PCAPS = HERE / "pcaps"


NAMES = sorted(gen.SCENARIOS)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("flowpcaps")
    gen.main(["x", str(out)])
    return out


def test_committed_captures_match_generator(written: Path) -> None:
    for name in NAMES:
        assert (PCAPS / name).read_bytes() == (written / name).read_bytes(), name


def _na(v):
    return None if v is None or pd.isna(v) else v


@pytest.mark.parametrize("way", ["normal", "rules"])
@pytest.mark.parametrize("name", NAMES)
def test_generated_capture(written: Path, name: str, way: str) -> None:
    cap = gen.SCENARIOS[name]
    trusted = gen.TRUSTED if name == "flow-spoof.pcap" else None
    with flow_path(way):
        a = analyze(written / name, trusted=trusted)
    assert not a.errors
    f = a.flows
    assert len(f) == len(cap.expect), f[["egress_ip", "egress_port", "method", "status"]]
    used: set[int] = set()
    for exp in cap.expect:
        m = f[
            (f.transport == exp.transport)
            & (f.egress_ip == exp.egress[0])
            & (f.egress_port == exp.egress[1])
            & (f.origin_ip == exp.origin[0])
            & (f.origin_port == exp.origin[1])
            & ~f.flow.isin(used)
        ]
        assert len(m), f"no flow for {exp}"
        row = m.iloc[0]
        used.add(int(row.flow))
        where = f"{name} flow {row.flow} {exp.egress}"
        assert row.method == exp.method, where
        assert row.status == exp.status, where
        got_client = (_na(row.client_ip), _na(row.client_port))
        assert got_client == (exp.client or (None, None)), where
        if exp.proxy:
            assert (row.proxy_ip, row.proxy_port) == exp.proxy, where
        if exp.pp_command:
            assert row.pp_command == exp.pp_command, where
        if exp.tlvs is not None:
            assert row.tlvs == exp.tlvs, where
        codes = set(filter(None, str(row.findings).split(";")))
        assert exp.codes <= codes, f"{where}: missing {exp.codes - codes}, got {codes}"
        assert not (exp.absent & codes), f"{where}: unexpected {exp.absent & codes}"
        assert codes <= set(CATALOGUE)
        # the findings frame agrees with the column
        fc = set(a.findings[a.findings.flow == row.flow].code.astype(str))
        assert fc == codes, where


def test_split_header_counts_segments(written: Path) -> None:
    a = analyze(written / "flow-proxy-split.pcap")
    fs = a.findings
    msg = fs[(fs.flow == 1) & (fs.code == "proxy.split")].message.iloc[0]
    assert "3 segments" in msg
    # the header packets are the three segments that carried it
    assert len(a.header_frames(1)) == 3


def test_trusted_absent_means_no_spoofing_finding(written: Path) -> None:
    a = analyze(written / "flow-spoof.pcap")
    assert "client.untrusted" not in set(a.findings.code.astype(str))


def test_untrusted_header_never_reported_without_flag(written: Path) -> None:
    a = analyze(written / "flow-spoof.pcap", trusted="192.0.2.0/24")
    f = a.flows
    rogue = f[f.egress_ip == gen.ROGUE]
    assert len(rogue) == 2
    for row in rogue.itertuples():
        if _na(row.client_ip) is not None:
            assert "client.untrusted" in row.findings.split(";")


def test_reference_and_fast_paths_agree(written: Path) -> None:
    """The normal path against every packet through the per-packet rules."""
    for name in NAMES:
        a = analyze(written / name).flows
        with flow_path("rules"):
            b = analyze(written / name).flows
        pd.testing.assert_frame_equal(a, b)
