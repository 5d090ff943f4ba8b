"""The filter bar's language, checked row by row against plain Python over ``analyze``'s frame."""

from __future__ import annotations

import ipaddress

import pandas as pd
import pytest

import pcapip
from pcapip.report import filters
from pcapip.tui.model import FlowModel, normalize

PCAPS = "tests/pcaps"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Several captures' flows in one frame: TOA, PROXY v1/v2, UDP, IPv6, spoofing."""
    parts = []
    for name in (
        "flow-proxy-misc.pcap",
        "flow-toa.pcap",
        "flow-udp.pcap",
        "haproxy-ipv6.pcap",
        "flow-spoof.pcap",
    ):
        a = pcapip.analyze(f"{PCAPS}/{name}", trusted="192.0.2.10/31")
        parts.append(normalize(a.flows))
    df = pd.concat(parts, ignore_index=True)
    assert len(df) > 30
    return df


def rows(df: pd.DataFrame, text: str) -> list[int]:
    return [i for i, hit in enumerate(filters.evaluate(text, df)) if hit]


def expect(df: pd.DataFrame, test) -> list[int]:
    return [i for i, r in enumerate(df.to_dict("records")) if test(r)]


def _codes(r: dict) -> list[str]:
    return [c for c in (r["findings"] or "").split(";") if c]


def _in(ip: str | None, cidr: str) -> bool:
    return ip is not None and ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


def test_issue_examples(frame: pd.DataFrame) -> None:
    df = frame
    assert rows(df, "method==ppv2") == expect(df, lambda r: r["method"] == "ppv2") != []
    ip = df["egress_ip"].iloc[0]
    assert rows(df, f"egress_ip={ip}") == expect(df, lambda r: r["egress_ip"] == ip) != []
    assert (
        rows(df, "client_ip in 100.64.0.0/16")
        == expect(df, lambda r: _in(r["client_ip"], "100.64.0.0/16"))
        != []
    )
    assert (
        rows(df, "finding:origin-rejected")
        == expect(df, lambda r: "origin.rejected" in _codes(r))
        != []
    )


def test_free_text_matches_what_the_table_shows(frame: pd.DataFrame) -> None:
    df = frame
    # a client port as typed, anywhere in the row
    port = int(df["client_port"].dropna().iloc[0])
    got = rows(df, str(port))
    want = expect(
        df,
        lambda r: any(
            str(port) in str(v)
            for k, v in r.items()
            if k in filters.TEXT_SEARCH_COLUMNS and v is not None
        ),
    )
    assert got == want and got
    # case-insensitive, quoted with spaces
    assert rows(df, '"UDP"') == expect(df, lambda r: r["transport"] == "udp") != []


def test_boolean_structure(frame: pd.DataFrame) -> None:
    df = frame
    assert rows(df, "method==ppv1 or method==ppv2") == expect(
        df, lambda r: r["method"] in ("ppv1", "ppv2")
    )
    assert rows(df, "transport==tcp status!=ok") == expect(
        df, lambda r: r["transport"] == "tcp" and r["status"] != "ok"
    )
    assert rows(df, "not (method==toa || method==none)") == expect(
        df, lambda r: r["method"] not in ("toa", "none")
    )
    assert rows(df, "! has:client_ip && transport==tcp") == expect(
        df, lambda r: r["client_ip"] is None and r["transport"] == "tcp"
    )
    assert rows(df, "method in ppv1, ppv2") == rows(df, "method==ppv1 or method==ppv2")
    assert rows(df, "method not in toa,none") == expect(
        df, lambda r: r["method"] not in ("toa", "none")
    )


def test_ip_fields_compare_addresses_not_text(frame: pd.DataFrame) -> None:
    df = frame
    v6 = next(ip for ip in df["egress_ip"] if ":" in ip)
    expanded = ipaddress.ip_address(v6).exploded  # same address, different text
    assert rows(df, f"egress_ip=={expanded}") == expect(df, lambda r: r["egress_ip"] == v6) != []
    # "ip" means any address column
    assert rows(df, f"ip=={v6}") == expect(
        df, lambda r: v6 in (r["egress_ip"], r["origin_ip"], r["client_ip"], r["proxy_ip"])
    )
    assert rows(df, "client_ip==none") == expect(df, lambda r: r["client_ip"] is None) != []


def test_numbers_and_findings_prefixes(frame: pd.DataFrame) -> None:
    df = frame
    assert rows(df, "packets>=10") == expect(df, lambda r: r["packets"] >= 10) != []
    assert rows(df, "port==80") == expect(
        df, lambda r: 80 in (r["egress_port"], r["origin_port"], r["client_port"], r["proxy_port"])
    )
    assert (
        rows(df, "finding:toa")
        == expect(df, lambda r: any(c.startswith("toa.") for c in _codes(r)))
        != []
    )
    assert (
        rows(df, "findings==client.untrusted")
        == expect(df, lambda r: "client.untrusted" in _codes(r))
        != []
    )
    assert rows(df, "tlvs~unique_id") == expect(df, lambda r: "unique_id" in (r["tlvs"] or ""))


@pytest.mark.parametrize(
    "text, words",
    [
        ("nosuch==1", "unknown field 'nosuch'"),
        ("client_ip in 10.0.0.0/99", "not an IP address or CIDR"),
        ("method==", "needs a value"),
        ("(method==toa", "missing ')'"),
        ("packets>many", "compares with a number"),
        ("client_ip>1.2.3.4", "supports ==, !=, in and ~"),
        ("method>toa", "is text"),
    ],
)
def test_errors_say_what_is_wrong(frame: pd.DataFrame, text: str, words: str) -> None:
    with pytest.raises(filters.FilterError, match=words.replace("(", r"\(").replace(")", r"\)")):
        filters.evaluate(text, frame)


def test_model_keeps_the_view_when_a_filter_is_wrong(frame: pd.DataFrame) -> None:
    m = FlowModel()
    m.replace(frame, final=True)
    m.set_filter("method==ppv2")
    before = m.view.copy()
    with pytest.raises(filters.FilterError):
        m.set_filter("method==ppv2 and (")
    assert list(m.view) == list(before) and m.filter_text == "method==ppv2"


def test_sorting_addresses_numerically() -> None:
    ips = ["10.0.0.10", "10.0.0.9", "2001:db8::1", "10.0.0.100", "9.255.255.255"]
    df = normalize(
        pd.DataFrame(
            {
                "flow": range(1, 6),
                "transport": ["tcp"] * 5,
                "start": [0] * 5,
                "end": [0] * 5,
                "egress_ip": ips,
                "egress_port": [1] * 5,
                "origin_ip": ["10.1.1.1"] * 5,
                "origin_port": [80] * 5,
                "method": ["none"] * 5,
                "status": ["absent"] * 5,
                "packets": [1] * 5,
                "bytes": [1] * 5,
            }
        )
    )
    m = FlowModel()
    m.replace(df, final=True)
    m.set_sort("egress")
    got = [m.record(m.position(i))["egress_ip"] for i in range(len(m))]
    assert got == sorted(
        ips, key=lambda s: (ipaddress.ip_address(s).version, int(ipaddress.ip_address(s)))
    )
    m.set_sort("egress", desc=True)
    assert [m.record(m.position(i))["egress_ip"] for i in range(len(m))] == got[::-1]


def test_errors_name_the_column_of_the_term(frame: pd.DataFrame) -> None:
    """The CLI prints the message as is: it must say where the mistake is."""
    for text, col in [
        ("method==ppv2 and client_ip in 10.0.0.0/99", 18),
        ("transport==tcp packets>many", 16),
        ("has:client_ip nosuch==1", 15),
        ("method==", 1),
        ("(method==toa", 1),
    ]:
        with pytest.raises(filters.FilterError) as exc:
            filters.evaluate(text, frame)
        assert f"column {col}" in str(exc.value), (text, str(exc.value))
        assert "\n" not in str(exc.value)


def test_analysis_frames_and_tui_frames_give_the_same_rows() -> None:
    """The Python API filters Analysis.flows (categoricals, nullable ints); the TUI its
    normalised frame: one implementation, the same rows for every kind of term."""
    a = pcapip.analyze(f"{PCAPS}/troubleshooting.pcap", trusted="10.77.2.0/29")
    raw, tui = a.flows, normalize(a.flows)
    for text in (
        "finding:origin.rejected",
        "not has:findings",
        "has:tlvs",
        "client_ip in 10.77.1.0/28",
        "origin_port=9080 or method==none",
        "10.77.2.200",
        "is:problem",
        "packets>11",
    ):
        got = filters.evaluate(text, raw)
        assert list(got) == list(filters.evaluate(text, tui)), text
        assert 0 < got.sum() < len(raw), text


def test_problem_term_is_warning_or_error_in_the_catalogue(frame: pd.DataFrame) -> None:
    from pcapip.flows.findings import CATALOGUE, Level

    df = frame
    want = expect(df, lambda r: any(CATALOGUE[c].level >= Level.WARNING for c in _codes(r)))
    assert rows(df, "is:problem") == want != []
    assert rows(df, "not is:problem") == [i for i in range(len(df)) if i not in want]
    # and the worst rank puts errors before warnings before the rest
    rank = filters.worst_rank(df)
    for i, r in enumerate(df.to_dict("records")):
        levels = [int(CATALOGUE[c].level) for c in _codes(r)]
        assert rank[i] == max(levels, default=-1)
