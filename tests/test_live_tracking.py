"""The live flow adapter on recorded captures: same summary as analyze, each flow once, bounded.

Live capture hands the flow stage whatever batches the pipe delivers, down to
one packet at a time.  Whatever the batching, the final summary must be what
``analyze`` reports for the same file, every flow must be announced exactly
once, and what was announced early must not contradict the final row.
HAProxy's logs (tests/pcaps/*.truth.json) check the announced mappings.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from pathlib import Path

import pytest
from flowpaths import flow_path

from pcapip import analyze
from pcapip.decode import decode
from pcapip.flows.findings import CATALOGUE, Level
from pcapip.flows.run import read_captures
from pcapip.live.tracking import FLOW_LIMIT, LiveTracker
from pcapip.report.analysis import Analysis
from pcapip.sources import open_capture
from pcapip.sources.order import in_time_order

PCAPS = Path(__file__).resolve().parent / "pcaps"
TRUTHS = sorted(PCAPS.glob("haproxy-*.truth.json")) + sorted(PCAPS.glob("nginx-*.truth.json"))
CAPTURES = [PCAPS / json.loads(p.read_text())["capture"] for p in TRUTHS]
CAPTURES += sorted(PCAPS.glob("seed*.pcap")) + sorted(PCAPS.glob("dissect-*.pcap"))
CAPTURES += sorted(PCAPS.glob("toa-*.pcap*")) + sorted((PCAPS / "public").glob("toa-*.pcap*"))


def run_live(path: Path, batch_size: int, max_flows: int = 100_000, **kw):
    """Feed ``path`` through LiveTracker and the one read loop as live capture does;
    (analysis, reports, max open)."""
    tracker = LiveTracker(max_flows=max_flows, **kw)
    reports = []
    most_open = 0

    def on_batch(ci: int, src, batch, pk) -> None:
        nonlocal most_open, reports
        most_open = max(most_open, tracker.open_flows)
        reports += tracker.take_reports()

    table, errors = read_captures([path], tracker=tracker, batch_size=batch_size, on_batch=on_batch)
    reports += tracker.take_reports()
    return Analysis(table, errors), reports, most_open


def key(r) -> tuple:
    return (r.transport, r.egress_ip, r.egress_port, r.origin_ip, r.origin_port, r.first_frame)


@pytest.mark.parametrize("batch_size", [1, 65536])
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_same_summary_as_analyze(path: Path, batch_size: int) -> None:
    live, reports, _ = run_live(path, batch_size)
    ref = analyze(path)
    assert live.to_csv() == ref.to_csv()
    assert live.to_jsonl(by="egress") == ref.to_jsonl(by="egress")
    # every counter agrees, however the packets were batched
    assert live.stats == ref.stats
    # every flow announced exactly once
    c = ref.table.columns
    ends = list(
        zip(
            c["transport"],
            c["egress_ip"],
            c["egress_port"],
            c["origin_ip"],
            c["origin_port"],
            strict=True,
        )
    )
    announced = [
        (r.transport, r.egress_ip, r.egress_port, r.origin_ip, r.origin_port) for r in reports
    ]
    assert Counter(announced) == Counter(ends)
    assert len({key(r) for r in reports}) == len(reports)
    # what was announced agrees with the final answer for that flow
    final: dict[tuple, list[tuple]] = {}
    for end, m, ip, st in zip(ends, c["method"], c["client_ip"], c["status"], strict=True):
        final.setdefault(end, []).append((m, ip, st))
    for r, end in zip(reports, announced, strict=True):
        assert (r.method, r.client_ip, r.status) in final[end]


@pytest.mark.parametrize("truth_path", TRUTHS, ids=lambda p: p.name.removesuffix(".truth.json"))
def test_announced_mappings_match_haproxy_log(truth_path: Path) -> None:
    truth = json.loads(truth_path.read_text())
    _, reports, _ = run_live(PCAPS / truth["capture"], batch_size=1)
    by_egress = {(r.egress_ip, r.egress_port): r for r in reports}
    for rec in truth["haproxy_records"]:
        r = by_egress[(rec["egress_ip"], rec["egress_port"])]
        assert r.origin_port == rec["server_port"]
        if rec["frontend"] == "fe_noheader":
            assert r.method == "none" and r.client_ip is None
        else:
            assert (r.client_ip, r.client_port) == (rec["client_ip"], rec["client_port"])
            assert r.method in ("ppv1", "ppv2") and r.status == "ok"


@pytest.mark.parametrize("name", ["haproxy-health-checks.pcap", "haproxy-v1.pcap"])
def test_cap_releases_closed_flows_without_loss(name: str) -> None:
    """Connections here follow one another: with room for one flow, each closed one is
    released when the next starts, and the summary is still exactly analyze's."""
    path = PCAPS / name
    ref = analyze(path)
    assert len(ref) > 1
    live, reports, most_open = run_live(path, batch_size=1, max_flows=1)
    assert most_open <= 1
    assert live.to_csv() == ref.to_csv()
    assert FLOW_LIMIT not in {f.code for f in live.table.findings}
    assert len({key(r) for r in reports}) == len(reports) == len(live)


def test_cap_cuts_open_flows_and_says_so() -> None:
    """19 connections that never close (handshakes only): with room for 2, the 17 oldest
    are cut while open, and each carries the finding."""
    path = PCAPS / "dissect-toa-edge.pcap"
    ref = analyze(path)
    assert set(ref.table.columns["status"]) <= {"ok", "malformed", "absent", "mid-stream"}
    live, reports, most_open = run_live(path, batch_size=1, max_flows=2)
    assert most_open <= 2
    cut = [f for f in live.table.findings if f.code == FLOW_LIMIT]
    assert len(cut) == len(ref) - 2
    assert sorted(f.flow for f in cut) == list(range(1, len(ref) - 1))  # the oldest ones
    assert CATALOGUE[FLOW_LIMIT].level is Level.WARNING
    # cutting changes no answer here (each flow's packets came before it was cut)
    for col in ("egress_ip", "egress_port", "method", "client_ip", "client_port", "status"):
        assert live.table.columns[col] == ref.table.columns[col]
    assert len({key(r) for r in reports}) == len(reports) == len(live)
    # the summary renders the new code (catalogue lookups by code)
    from rich.console import Console

    from pcapip.report.render import print_report

    console = Console(record=True, width=160)
    print_report(live, console)
    assert FLOW_LIMIT in console.export_text()


def test_ended_rows_spill_to_the_packed_store_without_loss(monkeypatch) -> None:
    """Live keeps ended flows' rows in the tracker's one row store (as analyze does): moved to
    temporary files as soon as any gather here, the summary is still analyze's, and the
    findings counted as flows end are those of the rows the tracker ends them with."""
    from pcapip.flows import holding
    from pcapip.flows.packed import DiskStore
    from pcapip.flows.tracker import FlowTracker

    stores: list[DiskStore] = []

    class Counted(DiskStore):
        def __init__(self) -> None:
            super().__init__()
            stores.append(self)

    monkeypatch.setattr(holding, "SPILL_BYTES", 0)
    monkeypatch.setattr(holding, "DiskStore", Counted)
    path = PCAPS / "haproxy-health-checks.pcap"
    ended: Counter[str] = Counter()
    tracker = LiveTracker(max_flows=1)

    def on_batch(ci: int, src, batch, pk) -> None:
        ended.update(tracker.take_ended_findings())

    table, _ = read_captures([path], tracker=tracker, batch_size=1, on_batch=on_batch)
    assert stores  # the rows went to a temporary file
    live, ref = Analysis(table), analyze(path)
    assert live.to_csv() == ref.to_csv()
    # counted once per flow as it ended (the last ones when the table was built)
    ended.update(tracker.take_ended_findings())
    plain = FlowTracker(max_flows=1)
    with open_capture(path, batch_size=1) as src:
        for batch in src:
            plain.feed(decode(batch), 0)
    rows = plain.finish()
    assert len(rows) == len(ref) > 1
    assert ended and ended == Counter(c for r in rows for c in {f.code for f in r.findings})


def test_rolling_lines_judge_a_missing_client_as_analyze_does() -> None:
    """A rolling line's client.missing follows analyze's rule: a bare handshake is enough on
    a TOA port, not on a PROXY port (the header comes with the first data)."""
    from pcapip.live.output import CrossFlow

    path = PCAPS / "flow-capture-end.pcap"
    tracker = LiveTracker()
    with open_capture(path) as src:
        for batch in src:
            tracker.feed(decode(batch), 0)
    rows = sorted(tracker.finish(), key=lambda r: r.first_frame)
    cross = CrossFlow(None)
    rolling = {r.egress_port: "client.missing" in cross.codes(r) for r in rows}
    final = analyze(path).flows
    expected = {
        int(p): "client.missing" in str(f).split(";")
        for p, f in zip(final.egress_port, final.findings, strict=True)
    }
    assert rolling == expected
    assert sorted(p for p, missing in expected.items() if missing) == [45003, 45004]


RULES_CAPTURES = ["haproxy-health-checks.pcap", "haproxy-v1.pcap", "haproxy-v2.pcap",
                  "haproxy-noheader.pcap", "flow-toa.pcap", "flow-udp.pcap", "flow-capture-end.pcap"]


def test_rolling_lines_carry_the_rule_and_rule_findings_analyze_gives(tmp_path) -> None:
    """``live --rules``: each line's rule and rule findings are those of ``analyze --rules``
    on the same packets (health checks, TOA, UDP, connections cut by the capture's end)."""
    from pcapip.live.output import CrossFlow
    from pcapip.rules import RuleSet

    rules = tmp_path / "edge.rules"
    # some right, some wrong, some ports left out: every verdict is exercised
    rules.write_text(
        "tcp:8001 10.77.2.2 9001 off ppv1\ntcp:8008 og:s 9101 off ppv1\n"
        "tcp:8009 og:s2 9101 off ppv2\ntcp:80-90 og:t 80-90 off toa\n"
        "tcp:443 og:x 443 off toa\nudp:4000-4100 og:u 4000-4100 off ppv2\n"
    )
    # in the order analyze reads them: of their first packets
    paths, _ = in_time_order([str(PCAPS / n) for n in RULES_CAPTURES])
    tracker = LiveTracker()
    with contextlib.ExitStack() as stack:
        for ci, path in enumerate(paths):
            src = stack.enter_context(open_capture(path))
            for batch in src:
                tracker.feed(decode(batch), ci)
    rows = sorted(tracker.finish(), key=lambda r: (r.capture, r.first_frame))
    cross = CrossFlow(None, RuleSet.load(rules))
    rolling = [cross.line(n, r) for n, r in enumerate(rows, 1)]
    final = analyze(paths, rules=rules).flows
    assert len(rolling) == len(final)

    def rule_part(rule: str, findings: str) -> tuple[str, list[str]]:
        return rule, [c for c in findings.split(";") if c.startswith("rule.")]

    got = [rule_part(rec["rule"], rec["findings"]) for rec in rolling]
    want = [rule_part(str(r), str(f)) for r, f in zip(final.rule, final.findings, strict=True)]
    assert got == want
    verdicts = {c for _, codes in want for c in codes}
    assert verdicts == {"rule.mismatch", "rule.unmatched"} and any(r for r, _ in want)


NUMBERED = [*CAPTURES, PCAPS / "loopback-tcpdump.pcap", PCAPS / "loopback-dumpcap.pcapng"]
NUMBERED += [PCAPS / "flow-udp.pcap", PCAPS / "flow-proxy-misc.pcap", PCAPS / "troubleshooting.pcap"]


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name)
@pytest.mark.parametrize(
    ("batch_size", "way"), [(5, "normal"), (4096, "normal"), (7, "rules"), (64, "pure")]
)
def test_reports_carry_the_flow_number_analyze_gives(path: Path, batch_size: int, way) -> None:
    """A rolling line's flow number is the one the final summary gives the flow and, unless
    the cap cut flows in two, the one ``analyze`` (and ``show --flow``) gives it in the
    recording; even with TCP and UDP mixed in one batch, however the loop runs."""
    numbered = []
    with flow_path(way):
        tracker = LiveTracker(max_flows=3)

        def on_batch(ci: int, src, batch, pk) -> None:
            numbered.extend(tracker.take_numbered())

        table, _ = read_captures(
            [path], tracker=tracker, batch_size=batch_size, on_batch=on_batch
        )
    numbered += tracker.take_numbered()

    def flows_of(f) -> dict[int, tuple]:
        return {
            int(r.flow): (r.transport, r.egress_ip, int(r.egress_port), int(r.origin_port), r.start.value)
            for r in f.itertuples()
        }

    got = {
        n: (r.transport, r.egress_ip, r.egress_port, r.origin_port, r.start_ns) for n, r in numbered
    }
    assert len(got) == len(numbered)  # each flow once
    assert got == flows_of(Analysis(table).flows)
    ref = analyze(path).flows
    if len(ref) == len(table):  # else the cap ended flows whose later packets made new ones
        assert got == flows_of(ref)
