"""The matching engine of ``pcapip resolve`` on captures built for it (port reuse, several
connections from one address, records outside the capture) and, for the interval join
itself, against a brute-force count over every (record, connection) pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gen import flow_pcaps as gen

import pcapip
from pcapip.resolve import resolve
from pcapip.resolve.match import Connections, match, meeting

ORIGIN = ("198.51.100.20", 80)
EGRESS = "192.0.2.10"
T0 = 1_700_000_000.0


def _conn(cap: gen.Capture, at: float, egress_port: int, client: tuple[str, int],
          origin: tuple[str, int] = ORIGIN, length: float = 0.5) -> None:
    """One PROXY v1 connection whose first packet is at ``at`` and last about ``length`` later."""
    cap.t = at - 0.001
    c = gen.Conn(cap, (EGRESS, egress_port), origin).handshake()
    c.send(gen.v1(*client[:1], origin[0], client[1], origin[1]) + gen.HTTP_GET)
    c.reply(gen.HTTP_OK)
    cap.t = at + length - 0.004
    c.close()


def _capture(tmp_path: Path, conns: list[tuple]) -> pcapip.Analysis:
    cap = gen.Capture("resolve.pcap", "resolve cases")
    for args in sorted(conns, key=lambda a: a[0]):
        _conn(cap, *args)
    cap.frames.sort(key=lambda f: f[0])
    path = tmp_path / "resolve.pcap"
    gen.write_pcap(path, cap.frames)
    return pcapip.analyze(path)


def _records(rows: list[tuple]) -> pd.DataFrame:
    """(ip, port or None, epoch seconds) per record."""
    return pd.DataFrame({
        "ip": [r[0] for r in rows],
        "port": pd.array([r[1] for r in rows], dtype="Int64"),
        "t": [r[2] for r in rows],
    })


def test_port_reuse_picks_the_connection_open_at_the_time(tmp_path: Path) -> None:
    a = _capture(tmp_path, [
        (T0, 40000, ("203.0.113.1", 1111)),
        (T0 + 5, 40000, ("203.0.113.2", 2222)),  # the same egress port, reused
        (T0 + 10, 40000, ("203.0.113.3", 3333)),
    ])
    recs = _records([(EGRESS, 40000, T0 + 10.2), (EGRESS, 40000, T0 + 0.2),
                     (EGRESS, 40000, T0 + 5.3)])
    out = resolve(a, recs, ip="ip", port="port", time="t", tolerance=0)
    assert list(out["match"]) == ["exact"] * 3
    assert list(out["client_ip"]) == ["203.0.113.3", "203.0.113.1", "203.0.113.2"]
    assert list(out["client_port"]) == [3333, 1111, 2222]
    assert list(out["candidates"]) == [1, 1, 1]
    flows = a.flows.set_index("flow")
    for flow, ip in zip(out["flow"], out["client_ip"], strict=True):
        assert flows.loc[flow, "client_ip"] == ip  # the flow number names that connection


def test_without_port_only_a_single_open_connection_is_named(tmp_path: Path) -> None:
    a = _capture(tmp_path, [
        (T0, 40001, ("203.0.113.1", 1111), ORIGIN, 2.0),
        (T0 + 1, 40002, ("203.0.113.2", 2222), ORIGIN, 2.0),  # overlaps the first
        (T0 + 10, 40003, ("203.0.113.3", 3333)),  # alone
    ])
    recs = _records([(EGRESS, None, T0 + 1.5), (EGRESS, None, T0 + 10.2),
                     (EGRESS, 40002, T0 + 1.5)])
    out = resolve(a, recs, ip="ip", port="port", time="t", tolerance=0)
    assert list(out["match"]) == ["ambiguous", "by-address", "exact"]
    assert list(out["candidates"]) == [2, 1, 1]
    assert pd.isna(out["client_ip"][0]) and pd.isna(out["flow"][0])  # never a guess
    assert list(out["client_ip"][1:]) == ["203.0.113.3", "203.0.113.2"]


def test_outside_the_capture_or_another_address_is_none(tmp_path: Path) -> None:
    a = _capture(tmp_path, [(T0, 40000, ("203.0.113.1", 1111))])
    recs = _records([(EGRESS, 40000, T0 + 3600), ("192.0.2.99", 40000, T0 + 0.2),
                     (EGRESS, 40001, T0 + 0.2)])
    out = resolve(a, recs, ip="ip", port="port", time="t")
    assert list(out["match"]) == ["none"] * 3
    assert list(out["candidates"]) == [0, 0, 0]
    assert out["client_ip"].isna().all()


def test_tolerance_widens_only_a_window_nothing_meets(tmp_path: Path) -> None:
    a = _capture(tmp_path, [(T0, 40000, ("203.0.113.1", 1111), ORIGIN, 0.5)])
    late = _records([(EGRESS, 40000, T0 + 1.2)])  # 0.7 s after the last packet
    assert resolve(a, late, ip="ip", port="port", time="t", tolerance=0)["match"][0] == "none"
    out = resolve(a, late, ip="ip", port="port", time="t", tolerance=1)
    assert out["match"][0] == "exact" and out["client_ip"][0] == "203.0.113.1"


def test_whole_second_times_cover_their_second(tmp_path: Path) -> None:
    """nginx's $time_local is cut to the second: 10:00:05 stands for [10:00:05, 10:00:06)."""
    a = _capture(tmp_path, [(T0 + 5.6, 40000, ("203.0.113.1", 1111), ORIGIN, 0.2)])
    out = resolve(a, _records([(EGRESS, 40000, T0 + 5)]), ip="ip", port="port", time="t",
                  tolerance=0)
    assert out["match"][0] == "exact"


def test_same_egress_to_two_origins_needs_origin_port(tmp_path: Path) -> None:
    other = ("198.51.100.21", 8080)
    a = _capture(tmp_path, [
        (T0, 40000, ("203.0.113.1", 1111), ORIGIN, 1.0),
        (T0 + 0.2, 40000, ("203.0.113.2", 2222), other, 1.0),
    ])
    recs = _records([(EGRESS, 40000, T0 + 0.5)])
    both = resolve(a, recs, ip="ip", port="port", time="t")
    assert both["match"][0] == "ambiguous" and both["candidates"][0] == 2
    one = resolve(a, recs, ip="ip", port="port", time="t", origin_port=8080)
    assert one["match"][0] == "exact" and one["client_ip"][0] == "203.0.113.2"


def test_records_keep_their_order_and_columns(tmp_path: Path) -> None:
    a = _capture(tmp_path, [(T0, 40000, ("203.0.113.1", 1111))])
    recs = _records([(EGRESS, 40000, T0 + 0.1)] * 3).assign(client_ip=["x", "y", "z"])
    recs.index = [7, 3, 5]
    out = resolve(a, recs, ip="ip", port="port", time="t")
    assert list(out.columns) == ["ip", "port", "t", "log_client_ip", "client_ip", "client_port",
                                 "method", "flow", "match", "candidates"]
    assert list(out["log_client_ip"]) == ["x", "y", "z"]
    assert list(out["method"]) == ["ppv1"] * 3


def test_time_column_kinds_agree(tmp_path: Path) -> None:
    """The same instants as epoch seconds, tz-aware datetimes, ISO text with an offset and
    naive local text with tz= give the same matches."""
    a = _capture(tmp_path, [(T0, 40000, ("203.0.113.1", 1111)), (T0 + 5, 40000, ("203.0.113.2", 2))])
    secs = [T0 + 0.25, T0 + 5.25]
    aware = pd.to_datetime(secs, unit="s", utc=True)
    forms = {
        "epoch": pd.Series(secs),
        "datetime": pd.Series(aware),
        "iso": pd.Series([t.tz_convert("America/New_York").isoformat() for t in aware]),
    }
    want = ["203.0.113.1", "203.0.113.2"]
    for name, col in forms.items():
        recs = pd.DataFrame({"ip": [EGRESS] * 2, "port": [40000] * 2, "t": col})
        assert list(resolve(a, recs, ip="ip", port="port", time="t", tolerance=0)["client_ip"]) == want, name
    naive = pd.DataFrame({"ip": [EGRESS] * 2, "port": [40000] * 2,
                          "t": [t.tz_convert("Asia/Kolkata").strftime("%Y-%m-%d %H:%M:%S.%f")
                                for t in aware]})
    got = resolve(a, naive, ip="ip", port="port", time="t", tz="Asia/Kolkata", tolerance=0)
    assert list(got["client_ip"]) == want
    wrong = resolve(a, naive, ip="ip", port="port", time="t", tolerance=0)  # read as UTC
    assert list(wrong["match"]) == ["none", "none"]


def test_request_duration_and_time_format(tmp_path: Path) -> None:
    """A record written when a 3-second request ended, in a strftime pattern of its own:
    its window reaches back over the request (nginx's $request_time)."""
    a = _capture(tmp_path, [(T0, 40000, ("203.0.113.1", 1111), ORIGIN, 0.5)])
    at = pd.Timestamp(T0 + 3.2, unit="s", tz="UTC").strftime("%Y/%m/%d %H.%M.%S")
    recs = pd.DataFrame({"ip": [EGRESS], "port": ["40000"], "when": [at], "took": ["3.000"]})
    kw = {"ip": "ip", "port": "port", "time": "when", "time_format": "%Y/%m/%d %H.%M.%S",
          "tolerance": 0}
    assert resolve(a, recs, **kw)["match"][0] == "none"
    out = resolve(a, recs, duration="took", **kw)
    assert out["match"][0] == "exact" and out["client_port"][0] == 1111
    assert pcapip.resolve.resolve is resolve  # reachable from the top-level package


# --------------------------------------------------------------- the join against brute force
def _brute(conns: Connections, key, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    count = np.zeros(len(key), np.int64)
    row = np.full(len(key), -1, np.int64)
    for i in range(len(key)):
        hit = np.flatnonzero((conns.key == key[i]) & (conns.start <= hi[i]) & (conns.end >= lo[i]))
        count[i] = len(hit) if key[i] >= 0 else 0
        if count[i] == 1:
            row[i] = conns.rows[hit[0]]
    return count, row


@pytest.mark.parametrize("seed", range(8))
def test_join_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(1, 300)), int(rng.integers(1, 400))
    keys = int(rng.integers(1, 20))
    start = rng.integers(0, 1000, m)
    conns = Connections(rng.integers(0, keys, m), start, start + rng.integers(0, 60, m),
                        rng.permutation(m) + 100)
    key = rng.integers(-1, keys + 2, n)  # some keys no connection has
    lo = rng.integers(-20, 1050, n)
    hi = lo + rng.integers(0, 5, n)
    got = meeting(conns, key, lo, hi)
    count, row = _brute(conns, key, lo, hi)
    assert np.array_equal(got.candidates, count)
    assert np.array_equal(got.row, row)
    tol = int(rng.integers(1, 30))
    widened = match(conns, key, lo, hi, tol)
    c2, r2 = _brute(conns, key, lo - tol, hi + tol)
    retry = count == 0
    assert np.array_equal(widened.candidates, np.where(retry, c2, count))
    assert np.array_equal(widened.row, np.where(retry, r2, row))


def test_ipv6_and_mapped_addresses_in_any_spelling() -> None:
    """Egress addresses as logs write them (exploded IPv6, brackets, IPv4-mapped) match the
    capture's connections; the expected clients are HAProxy's own log (the truth file)."""
    import ipaddress
    import json

    pcaps = Path(__file__).resolve().parent / "pcaps"
    a = pcapip.analyze(pcaps / "haproxy-ipv6.pcap")
    truth = json.loads((pcaps / "haproxy-ipv6.truth.json").read_text())["haproxy_records"]
    f = a.flows
    rows = []
    for i, rec in enumerate(truth):
        mine = f[(f.egress_ip == rec["egress_ip"]) & (f.egress_port == rec["egress_port"])
                 & (f.origin_port == rec["server_port"])]
        ip = ipaddress.ip_address(rec["egress_ip"])
        spelled = ip.exploded if i % 2 else f"[{ip}]"
        if ip.version == 4:
            spelled = f"::ffff:{ip}"
        rows.append((spelled, rec["egress_port"], mine.start.iloc[0].timestamp()))
    out = resolve(a, _records(rows), ip="ip", port="port", time="t",
                  origin_port=truth[0]["server_port"])
    assert set(out["match"]) == {"exact"}
    got = list(zip(out.client_ip, out.client_port, strict=True))
    assert got == [(r["client_ip"], r["client_port"]) for r in truth]


def test_analysis_resolve_is_the_same_join(tmp_path: Path) -> None:
    """``Analysis.resolve`` (the issue's spelling) is ``pcapip.resolve.resolve``."""
    a = _capture(tmp_path, [(T0, 40000, ("203.0.113.1", 1111)),
                            (T0 + 5, 40000, ("203.0.113.2", 2222))])
    recs = _records([(EGRESS, 40000, T0 + 5.3), (EGRESS, None, T0 + 0.2)])
    out = a.resolve(recs, ip="ip", port="port", time="t", tolerance=0)
    pd.testing.assert_frame_equal(out, resolve(a, recs, ip="ip", port="port", time="t",
                                               tolerance=0))
    assert list(out["client_ip"]) == ["203.0.113.2", "203.0.113.1"]
