"""The output columns are declared once (``pcapip.flows.columns``) and everything follows it.

Like the expert codes (tests/test_dissect_codes.py): every value a closed vocabulary lists is
one some bundled capture produces, and no capture produces a value it does not list.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd

import pcapip
from pcapip.errors import PcapipError
from pcapip.flows.columns import COLUMNS, METHODS, SCHEMA, STATUSES, of_kind
from pcapip.report import filters, render

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "tests" / "pcaps"
CAPTURES = sorted(
    p for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.is_file()
)


def test_every_vocabulary_word_comes_from_some_capture_and_no_other_word_does() -> None:
    closed = [c for c in SCHEMA if c.vocabulary]
    seen: dict[str, set[str]] = defaultdict(set)
    read = 0
    for cap in CAPTURES:
        try:
            t = pcapip.analyze(str(cap)).table
        except PcapipError:
            continue  # the bundled damaged and not-a-capture files
        read += 1
        for c in closed:
            seen[c.name] |= set(t.column(c.name, 0, len(t)))
    assert read > 30
    for c in closed:
        assert seen[c.name] == set(c.vocabulary), c.name


def test_analysis_flows_has_each_columns_declared_kind() -> None:
    f = pcapip.analyze(str(PCAPS / "flow-udp.pcap")).flows
    assert list(f.columns) == list(COLUMNS)
    for c in SCHEMA:
        dtype = f[c.name].dtype
        if c.kind == "int":
            assert dtype == "int64", c.name
        elif c.kind == "port":
            assert dtype == "UInt16", c.name
        elif c.kind == "time":
            assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC", c.name
        elif c.kind == "text" or c.distinct:
            assert isinstance(dtype, pd.StringDtype), c.name
        else:
            assert isinstance(dtype, pd.CategoricalDtype), c.name
            if c.vocabulary:
                assert tuple(dtype.categories) == c.vocabulary, c.name


def test_filter_fields_are_the_declared_columns_but_the_times() -> None:
    assert sorted(filters.FIELDS) == sorted(set(COLUMNS) - set(of_kind("time")))
    assert set(filters.IP_FIELDS) == {c.name for c in SCHEMA if c.kind == "ip"}
    assert set(filters.PORT_FIELDS) < set(filters.INT_FIELDS)
    # a port field compares as a number, an address field by CIDR
    f = pcapip.analyze(str(PCAPS / "haproxy-v2.pcap")).flows
    for port in filters.PORT_FIELDS:
        assert filters.evaluate(f"{port}>=0", f).sum() == f[port].notna().sum()
    for ip in filters.IP_FIELDS:
        assert filters.evaluate(f"{ip} in 0.0.0.0/0", f).sum() == (
            f[ip].astype(str).str.count(r"\.") == 3
        ).sum()


def test_every_method_and_status_has_its_words_in_the_views() -> None:
    from pcapip.tui.views import STATUS_STYLE

    assert tuple(render._METHOD_LABEL) == METHODS
    assert set(render._STATUS_STYLE) == set(STATUSES)
    assert set(STATUS_STYLE) == set(STATUSES)


def test_the_declaration_imports_neither_pandas_nor_numpy() -> None:
    code = (
        "import sys, pcapip.flows.columns\n"
        "print(sorted({'pandas', 'numpy'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "[]"
