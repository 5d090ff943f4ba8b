"""``--rules`` against real peers: HAProxy frontends stand in for the proxy's forwarding
rules (send-proxy, send-proxy-v2, none) and HAProxy's own log says which connection came
through which frontend. A rules file describing the lab gives no rule finding; each
deliberate mistake flags exactly the connections of the frontend it misdescribes.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import peers
import pytest
from peers import Header

from pcapip import analyze

PCAPS = Path(__file__).resolve().parent / "pcaps"
TRUTHS = sorted(PCAPS.glob("*.truth.json"))
METHOD = {Header.V1: "ppv1", Header.V2: "ppv2", Header.V2_CRC_UID: "ppv2", Header.NONE: "off"}
LAB_ROUTES = ("v1", "v2", "noheader", "stream-v2")


def _rule_line(route: peers.Route, origin: str, method: str | None = None, fwd: int | None = None) -> str:
    port = peers.ORIGIN_PORTS[route.origin]
    return f"tcp:{fwd or route.port} {origin} {port} off {method or METHOD[route.header]}"


def _flows_of(a, records: list[dict]) -> dict[str, set[int]]:
    """Frontend name -> the flow numbers of its logged connections (HAProxy's log decides)."""
    f = a.flows
    out: dict[str, set[int]] = {}
    for rec in records:
        m = f[(f.egress_ip == rec["egress_ip"]) & (f.egress_port == rec["egress_port"])
              & (f.origin_port == rec["server_port"])]
        assert len(m) == 1, rec
        out.setdefault(rec["frontend"], set()).add(int(m.iloc[0].flow))
    return out


def _flagged(a, code: str) -> set[int]:
    fnd = a.findings
    return set(fnd.loc[fnd["code"] == code, "flow"].tolist())


@pytest.mark.parametrize("truth", TRUTHS, ids=lambda p: p.name.removesuffix(".truth.json"))
def test_recorded_captures_match_rules_that_describe_them(truth: Path, tmp_path: Path) -> None:
    t = json.loads(truth.read_text())
    records = t["haproxy_records"]
    origin = records[0]["server_ip"]
    routes = [peers.ROUTES[r["name"]] for r in t["routes"]]
    rules = tmp_path / "edge.rules"
    rules.write_text("".join(_rule_line(r, origin) + "\n" for r in routes))
    a = analyze(PCAPS / truth.name.replace(".truth.json", ".pcap"), rules=rules)
    assert not _flagged(a, "rule.mismatch") and not _flagged(a, "rule.unmatched")
    labels = a.flows["rule"].astype(str)
    assert (labels != "").all()  # every flow, health checks included, has its rule
    for frontend, flows in _flows_of(a, records).items():
        line = [r.name for r in routes].index(frontend.removeprefix("fe_")) + 1
        assert {labels[a.flows.flow == n].iloc[0] for n in flows} == {
            f"{line}: {_rule_line(peers.ROUTES[frontend[3:]], origin)}"
        }


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> tuple[Path, list[dict]]:
    """One capture at the origin of connections through four frontends, and HAProxy's log."""
    peers.require_peers()
    work = tmp_path_factory.mktemp("rules-lab")
    result = peers.run_scenario(LAB_ROUTES, work / "lab.pcap", connections=3)
    records = [dataclasses.asdict(r) for r in result.records]
    assert {r["frontend"] for r in records} == {f"fe_{n}" for n in LAB_ROUTES}
    return result.pcap, records


def _lab_rules(**change: tuple[str | None, int | None] | None) -> str:
    """The lab's rules, with ``route=(method, forwarding port)`` changed or ``route=None``
    left out. Origins: by address, or by group for the stream origin."""
    origin = peers.addresses(4).origin
    out = []
    for name in LAB_ROUTES:
        if name in change and change[name] is None:
            continue
        method, fwd = change.get(name) or (None, None)
        route = peers.ROUTES[name]
        where = "og:streams" if name == "stream-v2" else str(origin)
        out.append(_rule_line(route, where, method, fwd))
    return "\n".join(out) + "\n"


@pytest.mark.parametrize(
    ("mistake", "code", "frontend"),
    [
        ({}, None, None),
        ({"v2": ("ppv1", None)}, "rule.mismatch", "fe_v2"),  # a v1 rule on the v2 backend
        ({"stream-v2": ("off", None)}, "rule.mismatch", "fe_stream-v2"),  # off on a PROXY one
        ({"v1": ("ppv2", None)}, "rule.mismatch", "fe_v1"),
        ({"noheader": ("ppv1", None)}, "rule.mismatch", "fe_noheader"),  # no send-proxy
        ({"noheader": None}, "rule.unmatched", "fe_noheader"),  # a port missing
        ({"v2": (None, 8012)}, "rule.mismatch", "fe_v2"),  # the wrong forwarding port
    ],
    ids=["as-configured", "v1-rule-v2-backend", "off-on-proxy", "v2-rule-v1-backend",
         "lacks-send-proxy", "missing-port", "wrong-forwarding-port"],
)
def test_exactly_the_misdescribed_frontends_flows_are_flagged(
    lab, tmp_path: Path, mistake: dict, code: str | None, frontend: str | None
) -> None:
    pcap, records = lab
    rules = tmp_path / "edge.rules"
    rules.write_text(_lab_rules(**mistake))
    a = analyze(pcap, rules=rules)
    by_frontend = _flows_of(a, records)
    for other in ("rule.mismatch", "rule.unmatched"):
        want = by_frontend[frontend] if other == code else set()
        assert _flagged(a, other) == want, (other, a.findings[a.findings.code == other])


def test_pcapip_rules_counts_each_rules_flows_as_haproxy_logged_them(lab, tmp_path: Path) -> None:
    pcap, records = lab
    rules = tmp_path / "edge.rules"
    rules.write_text(_lab_rules(v2=("ppv1", None)))
    proc = subprocess.run(
        [sys.executable, "-m", "pcapip", "rules", str(rules), "--capture", str(pcap),
         "--format", "json", "--fail-on", "error"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr  # a mismatch is an error finding
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    by_line = {r["line"]: r for r in rows if r["line"] is not None}
    logged = {n: sum(r["frontend"] == f"fe_{n}" for r in records) for n in LAB_ROUTES}
    for k, name in enumerate(LAB_ROUTES, 1):
        row = by_line[k]
        assert row["flows"] == logged[name], (name, row)
        carried = METHOD[peers.ROUTES[name].header].replace("off", "none")
        assert row[carried] == logged[name], (name, row)  # counted by what the wire carried
        assert row["mismatched"] == (logged[name] if name == "v2" else 0)
    assert not [r for r in rows if r["line"] is None]  # every origin port has its rule
