"""The CSV writer against Python's csv module, and the shared writer of analyze and live.

``write_csv`` writes a block of rows at a time with one compiled loop; the csv module
(minimal quoting) is the independent reference for the bytes it must write.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from pcapip.flows.columns import COLUMNS
from pcapip.flows.run import read_captures
from pcapip.flows.table import FlowTable
from pcapip.report import export
from pcapip.report.analysis import Analysis
from pcapip.report.export import write_csv, write_jsonl
from pcapip.report.write import write_analysis

PCAPS = Path(__file__).resolve().parent / "pcaps"


def _csv_module(table: FlowTable) -> str:
    import time

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    cols = table.columns

    def stamp(ns: int | None) -> str | None:
        if ns is None:
            return None
        sec, frac = divmod(ns, 1_000_000_000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"

    for k in range(len(table)):
        row = []
        for c in COLUMNS:
            v = cols[c][k]
            row.append(stamp(v) if c in ("start", "end") else v)
        w.writerow(row)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name",
    ["haproxy-v2-crc-uid.pcap", "flow-proxy-misc.pcap", "flow-udp.pcap", "public/ndpi-haproxy.pcap"],
)
def test_csv_bytes_match_the_csv_module(name: str) -> None:
    table, _ = read_captures([PCAPS / name])
    buf = io.StringIO()
    write_csv(table, buf)
    assert buf.getvalue() == _csv_module(table)


def test_csv_quotes_what_needs_quoting(monkeypatch: pytest.MonkeyPatch) -> None:
    table, _ = read_captures([PCAPS / "flow-proxy-misc.pcap"])
    t = copy.deepcopy(table)
    n = len(t)
    # (a lone carriage return: the csv module's quoting of it differs between Python versions;
    # the tlvs column never holds one: unprintable TLV values are written in hex)
    awkward = ["a,b", 'say "hi"', "line\nbreak", "", "plain", " lead", "x;y=z"]
    t.columns["tlvs"] = [awkward[k % len(awkward)] for k in range(n)]
    t.columns["client_ip"] = [None if k % 2 else "10.0.0.1" for k in range(n)]
    t.columns["start"][0] = 0  # the epoch
    expect = _csv_module(t)
    for chunk in (1, 3, 10_000):  # the writer works in slices of rows
        monkeypatch.setattr(export, "_LINES", chunk)
        buf = io.StringIO()
        write_csv(t, buf)
        assert buf.getvalue() == expect
    rows = list(csv.reader(io.StringIO(expect)))
    assert [r[COLUMNS.index("tlvs")] for r in rows[1:]] == t.columns["tlvs"]
    t.columns["tlvs"][0] = "cr\rhere"
    buf = io.StringIO()
    write_csv(t, buf)
    assert list(csv.reader(io.StringIO(buf.getvalue())))[1][COLUMNS.index("tlvs")] == "cr\rhere"


def _json_module(table: FlowTable, rows: list[int] | None = None) -> str:
    cols = table.columns
    picked = range(len(table)) if rows is None else rows
    out = []
    for k in picked:
        row = {}
        for c in COLUMNS:
            v = cols[c][k]
            if c in ("start", "end") and v is not None:
                v = np.datetime_as_string(np.int64(v).astype("datetime64[ns]"), unit="ns") + "Z"
            row[c] = v
        out.append(json.dumps(row, ensure_ascii=False) + "\n")
    return "".join(out)


@pytest.mark.parametrize(
    "name",
    ["haproxy-v2-crc-uid.pcap", "flow-proxy-misc.pcap", "haproxy-ipv6.pcap", "flow-attempts.pcap"],
)
def test_jsonl_bytes_match_the_json_module(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every line is json.dumps of the row's dict, whatever the slice size, for the whole
    table and for a selection of its rows."""
    table, _ = read_captures([PCAPS / name])
    expect = _json_module(table)
    for chunk in (1, 7, 10_000):
        monkeypatch.setattr(export, "_LINES", chunk)
        buf = io.StringIO()
        write_jsonl(table, buf)
        assert buf.getvalue() == expect
    some = np.arange(len(table))[::3]
    buf = io.StringIO()
    write_jsonl(table, buf, rows=some)
    assert buf.getvalue() == _json_module(table, some.tolist())


def test_jsonl_spells_awkward_values_as_json_does() -> None:
    table, _ = read_captures([PCAPS / "flow-proxy-misc.pcap"])
    t = copy.deepcopy(table)
    n = len(t)
    awkward = ["a,b", 'say "hi"', "line\nbreak", "", "tab\there", "ünïcode", "back\\slash"]
    t.columns["tlvs"] = [awkward[k % len(awkward)] for k in range(n)]
    t.columns["client_port"] = [None if k % 2 else k for k in range(n)]
    t.columns["start"][0] = 0  # the epoch
    buf = io.StringIO()
    write_jsonl(t, buf)
    assert buf.getvalue() == _json_module(t)
    assert [json.loads(x)["tlvs"] for x in buf.getvalue().splitlines()] == t.columns["tlvs"]


def test_empty_table_is_a_header_line() -> None:
    table, _ = read_captures([PCAPS / "empty.pcap"])
    assert len(table) == 0
    buf = io.StringIO()
    write_csv(table, buf)
    assert buf.getvalue() == ",".join(COLUMNS) + "\n"


def test_write_analysis_writes_flows_from_the_table_of_an_analysis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The per-flow CSV / JSON come straight from the table (the API's own writers), the
    other formats from the frames, all from one Analysis."""
    table, errors = read_captures([PCAPS / "haproxy-v1.pcap"])
    a = Analysis(table, errors)
    write_analysis(a, "csv", tmp_path / "a.csv")
    buf = io.StringIO()
    write_csv(table, buf)
    assert (tmp_path / "a.csv").read_text() == buf.getvalue() == a.to_csv()
    write_analysis(a, "json")
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(x)["client_ip"] for x in lines] == table.columns["client_ip"]
    write_analysis(a, "table", tmp_path / "t.txt", by="egress")
    assert "flows" in (tmp_path / "t.txt").read_text()
    write_analysis(a, "parquet", tmp_path / "t.parquet", by="client")
    assert (tmp_path / "t.parquet").stat().st_size > 0
    with pytest.raises(ValueError):
        write_analysis(a, "xml")


def test_a_callers_values_are_spelled_once_each_by_type() -> None:
    """A caller's column (any Python values) becomes words for the text loop: 1, 1.0 and
    True spell differently, each distinct value once, unhashable ones each on their own."""
    from pcapip.report.export import _spelled

    words, codes = _spelled(["a", None, 1, True, 1.0, 1, [2], [2]], repr)
    assert [words[c] for c in codes.tolist()] == [
        repr(v).encode() for v in ["a", None, 1, True, 1.0, 1, [2], [2]]
    ]
    assert len(words) == 7
