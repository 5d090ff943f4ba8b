"""The log readers of ``pcapip resolve``: nginx ``log_format`` as written in nginx.conf,
HAProxy's default and custom formats, JSON Lines, CSV, and the times they write.

The lines below are real output: nginx 1.22 and HAProxy 2.6 wrote them (the peers tests
in test_resolve_peers.py parse whole logs these programs write during the test)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from pcapip.errors import UsageError
from pcapip.resolve import haproxy, nginx, times
from pcapip.resolve.lines import by_pattern, lines_of
from pcapip.resolve.logs import LogSpec, load

COMBINED_LINES = [
    '::1 - alice [06/Dec/2026:16:49:33 +0000] "GET /a?q=\\x22x\\x22 HTTP/1.1" 404 153 '
    '"http://example/" "Mozilla/5.0 (X11; Linux x86_64) \\x22quoted\\x22"',
    '127.0.0.1 - - [06/Dec/2026:16:49:33 +0000] "GET / HTTP/1.1" 404 153 "-" "curl/7.88.1"',
]
HAPROXY_LINES = [
    '127.0.0.1:42568 [06/Dec/2026:16:43:18.049] fh fh/<NOSRV> 0/-1/-1/-1/0 200 73 - - LR-- '
    '1/1/0/0/0 0/0 "GET /x?a=1 HTTP/1.1"',
    "127.0.0.1:51348 [06/Dec/2026:16:43:18.059] ft bt/s 1/0/2 66 -- 1/1/0/0/0 0/0",
    "::1:55706 [06/Dec/2026:16:49:52.749] ft6 bt6/s 1/0/1 66 -- 1/1/0/0/0 0/0",
]


def _parse(rx_names, lines):
    rx, names = rx_names
    out = by_pattern([(1, lines_of("\n".join(lines).encode()))], rx, names)
    out.fields = _lists(out.fields)
    return out


def _lists(fields) -> dict[str, list]:
    """Arrow text columns as Python lists (None: missing)."""
    return {k: v.to_pylist() for k, v in fields.items()}


def test_combined_is_the_default_and_names_fields_after_variables() -> None:
    out = _parse(nginx.compile_format(nginx.COMBINED), COMBINED_LINES)
    assert out.bad == 0 and len(out) == 2
    assert list(out.fields) == ["remote_addr", "remote_user", "time_local", "request", "status",
                                "body_bytes_sent", "http_referer", "http_user_agent"]
    assert out.fields["remote_addr"] == ["::1", "127.0.0.1"]
    assert out.fields["remote_user"] == ["alice", "-"]  # kept as written
    assert out.fields["request"][0] == "GET /a?q=\\x22x\\x22 HTTP/1.1"
    assert out.fields["http_user_agent"] == ["Mozilla/5.0 (X11; Linux x86_64) \\x22quoted\\x22",
                                             "curl/7.88.1"]


@pytest.mark.parametrize("written", [
    "log_format main '$remote_addr $remote_port [$time_local] \"$request\" $status';",
    "'$remote_addr $remote_port [$time_local] ' '\"$request\" $status'",
    '"$remote_addr $remote_port [$time_local] \\"$request\\" $status"',
    '$remote_addr $remote_port [$time_local] "$request" $status',
    "log_format x escape=default '$remote_addr ${remote_port} [$time_local] \"$request\" $status'",
])
def test_format_as_written_in_nginx_conf(written: str) -> None:
    assert nginx.format_text(written).replace("${remote_port}", "$remote_port") == (
        '$remote_addr $remote_port [$time_local] "$request" $status')
    line = '10.0.0.1 40000 [06/Dec/2026:22:31:05 +0530] "GET / HTTP/1.1" 200'
    out = _parse(nginx.compile_format(written), [line, "10.0.0.1 x [bad] \"\" 200"])
    assert out.fields["remote_port"] == ["40000"] and out.bad == 1
    assert out.examples == [(2, "does not fit the log format", '10.0.0.1 x [bad] "" 200')]


def test_a_variable_twice_is_one_field_and_unknown_ones_take_what_fits() -> None:
    rx, names = nginx.compile_format("$host:$remote_port $remote_addr/$host $upstream_addr end")
    assert names == ["host", "remote_port", "remote_addr", "upstream_addr"]
    m = rx.match("a.example:5 10.0.0.1/a.example 10.1.1.1:80, 10.1.1.2:80 end")
    assert m and m.groups() == ("a.example", "5", "10.0.0.1", "10.1.1.1:80, 10.1.1.2:80")


def test_format_errors_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="no \\$variable"):
        nginx.compile_format("just text")
    with pytest.raises(UsageError, match="after a quoted part"):
        nginx.compile_format("'$remote_addr' junk")
    with pytest.raises(UsageError, match="no %variable"):
        haproxy.compile_format("plain")


def test_haproxy_default_formats_on_real_lines() -> None:
    http = _parse(haproxy.compile_format("http"), HAPROXY_LINES[:1])
    assert http.bad == 0 and http.fields["r"] == ['"GET /x?a=1 HTTP/1.1"']
    assert http.fields["ST"] == ["200"] and http.fields["hr"] == [""]  # no captures
    tcp = _parse(haproxy.compile_format("tcp"), HAPROXY_LINES[1:])
    assert tcp.bad == 0
    assert tcp.fields["ci"] == ["127.0.0.1", "::1"]  # an IPv6 client: up to the last colon
    assert tcp.fields["cp"] == ["51348", "55706"]
    assert tcp.fields["t"][1] == "06/Dec/2026:16:49:52.749"


def test_haproxy_syslog_header_and_custom_format() -> None:
    line = "<134>Dec  6 16:43:18 lb haproxy[812]: " + HAPROXY_LINES[1]
    assert _parse(haproxy.compile_format("tcp"), [line]).bad == 0
    custom = 'log-format "%ci:%cp\\ [%T]\\ %{+Q}[var(txn.user)]\\ %%\\ %ST"'
    rx, names = haproxy.compile_format(custom)
    assert names == ["ci", "cp", "T", "[var(txn.user)]", "ST"]
    m = rx.match('10.0.0.1:5 [06/Dec/2026:16:43:18 +0100] "bob" % 200')
    assert m and m.groups() == ("10.0.0.1", "5", "06/Dec/2026:16:43:18 +0100", '"bob"', "200")


def _ns(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp()) * times.NS


def test_time_local_offsets_iso8601_msec_and_tz() -> None:
    want = _ns("2026-12-06T17:01:05+00:00")
    assert list(times.with_pattern(["06/Dec/2026:22:31:05 +0530", "06/Dec/2026:12:01:05 -0500"],
                                   times.CLF, times.zone(None))) == [want, want]
    assert list(times.iso8601(["2026-12-06T22:31:05+05:30", "2026-12-06T17:01:05Z"],
                              times.zone(None))) == [want, want]
    assert list(times.iso8601(["2026-12-06T12:01:05"], times.zone("America/New_York"))) == [want]
    assert list(times.epoch(["1796490065.000", "1796490065000"])) == [1796490065 * times.NS] * 2
    assert list(times.auto(["06/Dec/2026:12:01:05.000"], times.zone("-05:00"))) == [want]
    bad = times.auto(["06/Dec/2026:12:01:05 +0000", "yesterday"], times.zone(None))
    assert bad[1] == np.iinfo(np.int64).min
    assert list(times.epoch(["1e30", "-5", "nan", "inf"])) == [np.iinfo(np.int64).min] * 4
    with pytest.raises(UsageError, match="--tz"):
        times.zone("Mars/Olympus")


def test_load_counts_lines_without_a_time_or_address(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text('{"ts": 1796490065.5, "ip": "10.0.0.1", "port": 4}\n'
                   "not json\n\n"
                   '{"ts": "never", "ip": "10.0.0.1"}\n'
                   '{"ts": 1796490066, "port": 5}\n'
                   '[1, 2]\n'
                   '{"ts": 1796490067, "ip": "10.0.0.2", "extra": {"a": 1}}\n')
    got = load(str(log), LogSpec(kind="jsonl", ip_field="ip", port_field="port", time_field="ts"))
    assert list(got.frame["ip"]) == ["10.0.0.1", "10.0.0.2"]
    assert list(got.line_numbers) == [1, 7]
    assert got.frame["extra"].isna().tolist() == [True, False]  # pandas' str: NaN missing
    assert got.frame["extra"][1] == '{"a":1}'
    assert got.parsed.bad == 4
    assert sorted(n for n, _, _ in got.parsed.examples) == [2, 4, 5, 6]
    with pytest.raises(UsageError, match="--ip-field 'addr'"):
        load(str(log), LogSpec(kind="jsonl", ip_field="addr", time_field="ts"))


def test_csv_log_with_usual_names(tmp_path: Path) -> None:
    log = tmp_path / "app.csv"
    log.write_text("timestamp,src_ip,src_port,user\n"
                   "2026-12-06T17:01:05.250Z,10.0.0.1,40000,bob\n"
                   "2026-12-06T17:01:06Z,10.0.0.1,,\"smith, j\"\n"
                   "short,row\n")
    got = load(str(log), LogSpec(kind="csv"))
    assert got.used == {"ip": "src_ip", "port": "src_port", "time": "timestamp", "duration": None}
    assert list(got.frame["user"]) == ["bob", "smith, j"]
    assert list(got.time) == [_ns("2026-12-06T17:01:05+00:00") + 250_000_000,
                              _ns("2026-12-06T17:01:06+00:00")]
    assert got.parsed.bad == 1 and got.parsed.examples[0][0] == 4


def test_blank_crlf_and_bad_lines_keep_their_numbers(tmp_path: Path) -> None:
    """Blank and whitespace lines are no record and no error; CRLF line ends are read
    like LF; a line that does not fit is counted with its own number, across chunks."""
    good = COMBINED_LINES[1]
    text = "\r\n".join([good, "", "   ", "oops", good, "\t"]) + "\r\n" + good
    log = tmp_path / "crlf.log"
    log.write_text(text, newline="")
    got = load(str(log), LogSpec(kind="nginx"))
    assert list(got.line_numbers) == [1, 5, 7]
    assert got.parsed.bad == 1 and got.parsed.examples == [(4, "does not fit the log format", "oops")]
    from pcapip.resolve.lines import read_blocks

    small = list(read_blocks(str(log), size=40))  # blocks end at line ends, numbers follow
    assert [t for _, b in small for t in b.to_pylist()] == text.split("\r\n")
    assert [n for n, _ in small] == [1 + sum(len(b) for _, b in small[:i]) for i in range(len(small))]
    rx, names = nginx.compile_format(nginx.COMBINED)
    assert list(by_pattern(small, rx, names).line_numbers) == [1, 5, 7]


def test_by_pattern_agrees_with_each_line_matched_alone() -> None:
    """Differential: a chunk read at once (whole chunks of records taken without a loop over
    their lines) gives what matching every line alone with the format gives: the same
    records, numbers and fields; unfit lines counted; blank lines, whitespace lines and
    lines whose every field is empty no record."""
    import random

    rx, names = nginx.compile_format('[$a] $b "$c"')  # every field may be empty
    shapes = ['[x] y "z"', '[] y ""', '[]  ""', "", "   ", "junk", '[a,b] 1 "q r"', '[x]  "z"']
    rng = random.Random(15)
    for trial in range(200):
        pool = shapes if trial % 2 else shapes[:1] + shapes[6:]  # some chunks all records
        lines = [rng.choice(pool) for _ in range(rng.randint(1, 30))]
        chunks, first = [], 1
        for size in (rng.randint(1, 10) for _ in range(len(lines))):
            part = lines[first - 1:first - 1 + size]
            if part:
                chunks.append((first, lines_of("\n".join(part).encode())))
            first += len(part)
        got = by_pattern(chunks, rx, names)
        want_numbers, want_fields, bad = [], {n: [] for n in names}, 0
        for number, line in enumerate(lines, 1):
            m = rx.match(line)
            if m is None:
                bad += bool(line.strip())
            elif any(m.groups()):
                want_numbers.append(number)
                for n, v in zip(names, m.groups(), strict=True):
                    want_fields[n].append(v)
        assert got.line_numbers.tolist() == want_numbers, lines
        assert _lists(got.fields) == want_fields and got.bad == bad, lines


@pytest.mark.parametrize("kind, fmt", [
    ("nginx", None),
    ("haproxy", None),
    ("haproxy", '%ci:%cp [%t] %ft %b/%s %{+Q}r'),
])
def test_records_frame_is_the_fields_kept(kind: str, fmt: str | None, tmp_path: Path) -> None:
    """The records' frame, made from the Arrow columns the pattern gave, holds exactly the
    fields as lists would (HAProxy's unquoted request and empty captures included), for the
    records kept: a line that does not fit and a record without a time are left out. Its
    text columns are pandas' ``str`` (Arrow-backed, NaN where the format left a field out)."""
    import pandas as pd

    lines = COMBINED_LINES if kind == "nginx" else HAPROXY_LINES
    if fmt:
        lines = ['127.0.0.1:42568 [06/Dec/2026:16:43:18.049] fh be/s "GET /x HTTP/1.1"',
                 '10.0.0.1:1 [31/Dec/2026:23:59:59.999] fh be/s "POST /y, z HTTP/1.0"']
    broken = lines[0].replace("06/Dec/2026", "06/Xyz/2026")  # fits the pattern, no time
    if kind == "nginx":
        broken = lines[0].replace("06/Dec/2026:16:49:33", "99/Dec/2026:16:49:33")
    text = "\n".join([lines[0], "not a record", broken, *lines[1:]]) + "\n"
    path = tmp_path / "x.log"
    path.write_text(text)
    got = load(str(path), LogSpec(kind=kind, format=fmt))
    fields = _lists(got.parsed.fields)
    keep = [got.parsed.line_numbers.tolist().index(n) for n in got.line_numbers]
    text = pd.StringDtype("pyarrow", na_value=np.nan)
    want = pd.DataFrame({k: pd.Series([fields[k][i] for i in keep], dtype=text) for k in fields})
    pd.testing.assert_frame_equal(got.frame, want, check_exact=True)
    assert len(got.frame) == len(lines) and got.parsed.bad == 2


def test_json_lines_fields_as_every_record_names_them(tmp_path: Path) -> None:
    """Differential: JSON Lines read into columns as they come give, for records whose
    fields differ (met late, missing, nested, null, numbers, bad lines between), what
    collecting every object first and naming the fields in first-seen order gives."""
    import json
    import random

    from pcapip.resolve import tabular

    rng = random.Random(16)
    objects = []
    for i in range(400):
        keys = rng.sample(["ip", "port", "time", "ua", "extra", "n"], rng.randint(0, 6))
        obj = {k: rng.choice([None, 7, 2.5, True, "x", {"a": i}, [1, "b"]]) for k in keys}
        if rng.random() < 0.3:
            obj["req"] = {"id": i, "path": f"/{i}"}
        objects.append(obj)
    lines = [json.dumps(o) if i % 37 else "not json" for i, o in enumerate(objects)]
    got = tabular.jsonl(enumerate(lines, 1), ["req.id"])
    kept = [(i + 1, o) for i, o in enumerate(objects) if i % 37]
    order: dict[str, None] = {}
    flats = []
    for _, o in kept:
        flat = dict(o)
        if isinstance(o.get("req"), dict):
            flat["req.id"] = o["req"]["id"]
        order.update(dict.fromkeys(flat))
        flats.append(flat)
    assert list(got.fields) == list(order)
    assert _lists(got.fields) == {k: [tabular._text(f.get(k)) for f in flats] for k in order}
    assert got.line_numbers.tolist() == [n for n, _ in kept] and got.bad == len(objects) - len(kept)


def test_json_lines_hostile_lines_read_as_json_loads_reads_each() -> None:
    """Differential: hostile JSON lines (space around, trailing text, two objects on a line,
    NaN and Infinity, duplicated keys, big and negative-zero numbers, non-objects, blank
    lines) read as json.loads reads each line alone: the same records, values, counted
    lines and the reasons quoted."""
    import json

    from pcapip.resolve import tabular

    lines = ['{"a": 1}', ' {"a": 2}', '{"a": 3} ', '\t{"a": 4}\t', '{"a": 5} x', '{"a":6}{"a":7}',
             '{"a": NaN, "b": Infinity}', '{"a": 1, "a": "dup"}', '{"a": 123456789012345678901234567890}',
             '{"a": -0.0, "b": 0.0, "c": 1e16, "d": 1.50}', "[1]", '"x"', "", "  ", "\xa0", "{",
             '{"a": {"b": [1, {"c": null}]}}', '{"a": true, "b": false, "c": null}', "nul",
             '{"a": "\\u00e9\\ud83d\\ude00"}', '{"a": 1}\u2028']
    got = tabular.jsonl(enumerate(lines, 1), [])
    want_numbers, objects, bad, reasons = [], [], 0, []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            bad += 1
            reasons.append((number, f"not JSON ({exc.msg})", line[:200]))
            continue
        if not isinstance(obj, dict):
            bad += 1
            reasons.append((number, "not a JSON object", line[:200]))
            continue
        want_numbers.append(number)
        objects.append(obj)
    keys = list(dict.fromkeys(k for o in objects for k in o))
    assert got.line_numbers.tolist() == want_numbers
    assert _lists(got.fields) == {k: [tabular._text(o.get(k)) for o in objects] for k in keys}
    assert got.bad == bad and got.examples == reasons[:5]


def test_json_field_texts_as_each_value_is_written() -> None:
    """The column-at-a-time writing of JSON values (ints once per distinct value, numbers
    and text with one str) gives each value's own text, for every mix of kinds: ints
    equal to floats or bools, -0.0 beside 0.0, NaN, big ints, nested values, None."""
    import random

    from pcapip.resolve import tabular

    pool = [0, 1, -1, 2**70, 1.0, 0.0, -0.0, float("nan"), float("inf"), 1e16, 0.1, True, False,
            None, "1", "", "x", {"a": 1}, [1, "b"]]
    rng = random.Random(17)
    for kinds in ([0, 1, -1, 2**70], [0, 1, None], [1, 1.0, 0.0, -0.0], ["1", 1, 1.0, None],
                  [True, 1, 0, False], pool, ["a", None], [float("nan"), 0.0, -0.0]):
        values = [rng.choice(kinds) for _ in range(300)]
        assert tabular._texts(list(values)) == [tabular._text(v) for v in values], kinds


@pytest.mark.parametrize("reader", ["jsonl", "csv_rows"])
def test_a_log_of_bad_lines_is_read_in_bounded_memory(reader: str) -> None:
    """Bad lines are counted, the first few quoted, and nothing else of them kept: 100,000
    bad lines of 1 kB (100 MB of text) are read with a few MB traced, and the count and
    the quotes are exact."""
    import tracemalloc

    from pcapip.resolve import tabular
    from pcapip.resolve.lines import EXAMPLES

    n, width = 100_000, 1000
    head = [(1, "ip,port,time")] if reader == "csv_rows" else []
    body = "x" * width if reader == "jsonl" else "a,b" + "x" * width  # (CSV: 2 cells, not 3)

    def numbered():
        yield from head
        for i in range(len(head) + 1, len(head) + n + 1):
            yield i, f"{i:07d}{body}"

    read = getattr(tabular, reader)
    read(iter([*head, (2, "1,2,3" if head else "{}")]), ["ip"])  # (what it imports, first)
    tracemalloc.start()
    try:
        parsed = read(numbered(), ["ip", "port", "time"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert parsed.bad == n and len(parsed) == 0
    first = len(head) + 1
    assert [e[0] for e in parsed.examples] == list(range(first, first + EXAMPLES))
    assert all(e[2] == f"{e[0]:07d}{body}"[:200] for e in parsed.examples)
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.1f} MiB traced for 100 MB of bad lines"
