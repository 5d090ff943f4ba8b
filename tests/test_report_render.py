"""The terminal report at 80 columns: nothing wider than the terminal, problem flows
first, the findings column whole, one line per finding unless --explain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

import pcapip
from pcapip.flows.findings import CATALOGUE
from pcapip.report.render import print_report

PCAPS = Path(__file__).resolve().parent / "pcaps"
TRUTH = json.loads((PCAPS / "troubleshooting.ground-truth.json").read_text())


@pytest.fixture(scope="module")
def trouble() -> pcapip.Analysis:
    return pcapip.analyze(PCAPS / "troubleshooting.pcap", trusted=TRUTH["trusted"])


def render(a: pcapip.Analysis, width: int, **kw) -> str:
    console = Console(record=True, width=width, no_color=True)
    print_report(a, console, **kw)
    return console.export_text()


def _flow_rows(text: str) -> list[list[str]]:
    """The flows table's rows (first cell a flow number), split on whitespace."""
    rows: list[list[str]] = []
    for ln in text.split("\nFlows", 1)[1].splitlines():
        words = ln.split()
        if words and words[0].isdigit():
            rows.append(words)
        elif rows and words and "." in words[0]:  # a cell's next line (a second code)
            rows[-1] += words
    return rows


@pytest.mark.parametrize("width", [80, 100, 120])
def test_narrow_terminal_keeps_findings_and_puts_problems_first(
    trouble: pcapip.Analysis, width: int
) -> None:
    text = render(trouble, width, max_rows=0)
    assert max(len(ln) for ln in text.splitlines()) <= width
    header = next(ln for ln in text.split("\nFlows", 1)[1].splitlines() if "flow" in ln)
    assert "findings" in header.split() and "egress" in header.split()
    rows = _flow_rows(text)
    assert sorted(int(r[0]) for r in rows) == list(range(1, len(trouble) + 1))
    # every code whole, on the flows that have it
    codes = set(CATALOGUE)
    shown = {int(r[0]): {c for c in r if c in codes} for r in rows}
    for flow, cell in zip(trouble.flows["flow"], trouble.flows["findings"], strict=True):
        assert shown[flow] == {c for c in str(cell).split(";") if c}
    # problem flows (per the ground truth) come before every healthy one
    problem = {(c["egress_ip"], c["egress_port"]) for c in TRUTH["connections"] if c["problem"]}
    f = trouble.flows.set_index("flow")
    order = [(f.loc[int(r[0]), "egress_ip"], int(f.loc[int(r[0]), "egress_port"])) for r in rows]
    flags = [o in problem for o in order]
    assert flags == sorted(flags, reverse=True) and sum(flags) == len(problem)


def test_findings_fold_to_one_line_each_and_explain_gives_the_full_text(
    trouble: pcapip.Analysis,
) -> None:
    codes = sorted(set(trouble.findings["code"].astype(str)))
    short = render(trouble, 80)
    long = render(trouble, 80, explain=True)
    for code in codes:
        kind = CATALOGUE[code]
        lines = [ln for ln in short.splitlines() if ln.split()[:2] == [kind.level.label, code]]
        assert len(lines) == 1, code
        flat = " ".join(long.split())
        assert " ".join(kind.meaning.split()) in flat
        assert " ".join(kind.fix.split()) in flat
    assert "Fix:" not in short and "--explain" in short
    assert max(len(ln) for ln in long.splitlines()) <= 80


def test_grouped_tables_fit_and_show_counts(trouble: pcapip.Analysis) -> None:
    text = render(trouble, 80, by="origin")
    assert max(len(ln) for ln in text.splitlines()) <= 80
    assert "client.missing=12" in text and "origin.rejected=2" in text
    assert "problems" in text


def test_a_filtered_report_says_so(trouble: pcapip.Analysis) -> None:
    text = render(trouble.filter("finding:origin.rejected"), 80)
    assert "matching the filter (2 of 71 flows)" in text
    assert sorted(int(r[0]) for r in _flow_rows(text)) == sorted(trouble.filter(
        "finding:origin.rejected").flows["flow"])


@pytest.mark.parametrize("width", [80, 200])
def test_ipv6_addresses_are_printed_not_taken_for_markup(width: int) -> None:
    """"[fd77:2::1]:35260" once vanished to ":35260" (Rich read the brackets as a tag)."""
    a = pcapip.analyze(PCAPS / "haproxy-ipv6.pcap")
    text = render(a, width)
    assert max(len(ln) for ln in text.splitlines()) <= width
    for ip, port in zip(a.flows["egress_ip"], a.flows["egress_port"], strict=True):
        assert f"[{ip}]:{port}" in text
