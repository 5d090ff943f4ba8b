"""``Analysis.filter`` and the grouped frames, checked against the recorded ground truth
of the captures (what nginx and HAProxy logged), not against pcapip's own columns."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import pcapip
from pcapip.flows.findings import CATALOGUE, Level
from pcapip.report.analysis import GROUP_COLUMNS
from pcapip.report.filters import FilterError

PCAPS = Path(__file__).resolve().parent / "pcaps"
TRUTH = json.loads((PCAPS / "troubleshooting.ground-truth.json").read_text())
NGINX = json.loads((PCAPS / "nginx-rejects-proxy.truth.json").read_text())


@pytest.fixture(scope="module")
def trouble() -> pcapip.Analysis:
    return pcapip.analyze(PCAPS / "troubleshooting.pcap", trusted=TRUTH["trusted"])


def _egress(df: pd.DataFrame) -> set[tuple[str, int]]:
    return {(str(i), int(p)) for i, p in zip(df["egress_ip"], df["egress_port"], strict=True)}


def _truth(test) -> set[tuple[str, int]]:
    return {(c["egress_ip"], c["egress_port"]) for c in TRUTH["connections"] if test(c)}


def test_origin_rejected_is_what_nginx_answered_400(trouble: pcapip.Analysis) -> None:
    v = trouble.filter("finding:origin.rejected")
    assert _egress(v.flows) == _truth(lambda c: c["reply_status"] == 400) != set()
    a = pcapip.analyze(PCAPS / "nginx-rejects-proxy.pcap")
    logged = {(f[2], int(f[3])) for f in (x.split("\t") for x in NGINX["origin_log"]) if f[6] == "400"}
    assert _egress(a.filter("finding:origin.rejected").flows) == logged
    assert len(logged) == len(NGINX["haproxy_records"]) == 4


def test_problems_are_the_connections_with_a_recorded_problem(trouble: pcapip.Analysis) -> None:
    v = trouble.filter(problems=True)
    assert _egress(v.flows) == _truth(lambda c: c["problem"] is not None)
    both = trouble.filter("origin_port==9001", problems=True)
    assert _egress(both.flows) == _truth(lambda c: c["problem"] and c["origin_port"] == 9001)


def test_a_view_restricts_every_frame_and_export(trouble: pcapip.Analysis) -> None:
    v = trouble.filter("egress_ip==10.77.2.5")
    assert len(v) == len(v.flows) == len(_truth(lambda c: c["egress_ip"] == "10.77.2.5"))
    assert set(v.findings["flow"]) <= set(v.flows["flow"])
    assert set(v.findings["flow"]) == set(
        trouble.findings[trouble.findings["flow"].isin(v.flows["flow"])]["flow"]
    )
    assert list(v.egress["egress_ip"]) == ["10.77.2.5"]
    # flows keep their numbers; the CSV is exactly those lines of the full export
    full = list(csv.reader(io.StringIO(trouble.to_csv())))
    mine = list(csv.reader(io.StringIO(v.to_csv())))
    keep = {str(n) for n in v.flows["flow"]}
    assert mine == [full[0]] + [r for r in full[1:] if r[0] in keep]
    lines = [json.loads(x) for x in v.to_jsonl().splitlines()]
    assert [x["flow"] for x in lines] == list(v.flows["flow"])
    # a view of a view
    vv = v.filter("status==malformed")
    assert set(vv.flows["flow"]) == set(v.flows[v.flows["status"] == "malformed"]["flow"]) != set()
    assert vv.worst_level() is Level.ERROR
    assert trouble.filter("method==ppv1 and egress_ip==10.77.2.4").worst_level() is None
    assert len(trouble.filter("")) == len(trouble)
    with pytest.raises(FilterError, match="column 1"):
        trouble.filter("nosuch==1")


@pytest.mark.parametrize("by", ["egress", "client", "origin"])
def test_grouped_frames_count_problems_and_findings(trouble: pcapip.Analysis, by: str) -> None:
    g = trouble.frame(by)
    assert tuple(g.columns) == GROUP_COLUMNS[by]
    f = trouble.flows
    key = {"egress": ["egress_ip"], "client": ["client_ip"], "origin": ["origin_ip", "origin_port"]}[by]
    fnd = trouble.findings.drop_duplicates(["flow", "code"]).merge(f[["flow", *key]], on="flow")
    for row in g.to_dict("records"):
        sel = pd.Series(True, index=f.index)
        for k in key:
            sel &= f[k].astype(str) == str(row[k])
        flows = set(f[sel]["flow"])
        assert row["flows"] == len(flows)
        mine = fnd[fnd["flow"].isin(flows)]
        want = Counter(mine["code"].astype(str))
        got = dict(x.split("=") for x in row["findings"].split(";") if x)
        assert {c: int(n) for c, n in got.items()} == dict(want)
        bad = mine[mine["severity"].isin(["warning", "error"])]
        assert row["problems"] == bad["flow"].nunique()


def test_origins_name_the_listener_without_send_proxy(trouble: pcapip.Analysis) -> None:
    o = trouble.origins.set_index("origin_port")
    per_port = Counter(c["origin_port"] for c in TRUTH["connections"])
    assert dict(o["flows"]) == dict(per_port)
    api = sum(1 for c in TRUTH["connections"] if c["header"] == "none")
    assert f"client.missing={api}" in o.loc[9001, "findings"]
    assert "none" in o.loc[9001, "methods"].split(",")
    assert o.loc[9080, "findings"] == "origin.rejected=2"
    # severities: the most severe codes come first in the cell
    levels = [CATALOGUE[x.split("=")[0]].level for x in o.loc[9001, "findings"].split(";")]
    assert levels == sorted(levels, reverse=True)
