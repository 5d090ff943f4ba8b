"""The log-format patterns as RE2 reads them (``pyarrow.compute.extract_regex``, what
``pcapip resolve`` runs) against the same patterns read by Python's ``re`` (an independent
engine), line by line, on hostile lines: Unicode digits and spaces, control characters,
quotes, brackets, lone CRs, astral characters, bytes that are no UTF-8."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pcapip.resolve import haproxy, nginx
from pcapip.resolve.lines import by_pattern, lines_of, read_blocks
from pcapip.resolve.rx import passes

BENCH = ('$remote_addr $remote_port [$time_local] $msec "$request" $status $body_bytes_sent '
         '$request_time "$http_user_agent"')
CASES = [
    (nginx.compile_format(nginx.COMBINED),
     '::1 - alice [06/Dec/2026:16:49:33 +0000] "GET /a?q=1 HTTP/1.1" 404 153 "http://e/" "curl/7"'),
    (nginx.compile_format(BENCH),
     '10.41.146.43 18765 [14/Nov/2023:23:13:20 +0100] 1700000000.001 "POST /login HTTP/1.1" 200 '
     '63693 0.000 "curl/8.5.0"'),
    (nginx.compile_format('$time_iso8601|$host:$remote_port $upstream_addr [$a] $b "$c"'),
     '2026-12-06T17:01:05+05:30|a.example:5 10.1.1.1:80, 10.1.1.2:80 [x] y "z"'),
    (haproxy.compile_format("http"),
     '<134>Dec  6 16:43:18 lb haproxy[812]: 127.0.0.1:42568 [06/Dec/2026:16:43:18.049] fh '
     'fh/<NOSRV> 0/-1/-1/-1/0 200 73 - - LR-- 1/1/0/0/0 0/0 {a|b} "GET /x?a=1 HTTP/1.1"'),
    (haproxy.compile_format("tcp"),
     "::1:55706 [06/Dec/2026:16:49:52.749] ft6 bt6/s 1/0/1 66 -- 1/1/0/0/0 0/0"),
    (haproxy.compile_format('%ci:%cp\\ [%T]\\ %{+Q}[var(txn.user)]\\ %%\\ %ST'),
     '10.0.0.1:5 [06/Dec/2026:16:43:18 +0100] "bob" % 200'),
    # lazy fields on both sides of every cut between passes: what each takes depends on
    # what follows it, in the next pass
    (nginx.compile_format("$a $b $c $d $e $f $g"), "a b c d e f g h i"),
    (nginx.compile_format('$a"$b" $c $remote_addr $d [$e] $f|$g'), 'x"y" z 10.0.0.1 w [v] u|t s'),
]
#: what Python's re and RE2 might read differently: Unicode digits, spaces and line
#: separators, C0/C1 controls, astral and combining characters, the formats' own punctuation
HOSTILE = ["\u0663", "\u07c0", "\U0001d7d8", "\uff11", "\xa0", "\u2028", "\u2029", "\x85",
           "\x1c", "\x1f", "\t", "\x0b", "\x0c", "\r", "\x00", "\x7f", "é", "€", "\U00010348",
           "e\u0301", "\ufffd", '"', "\\", "[", "]", "{", "}", "|", "-", " ", "  ", "/", ":",
           "+", "%", ".", "0", "9", "A", "z", "ǅ", "\u212a"]


def _mutate(rng: random.Random, line: str) -> str:
    for _ in range(rng.randint(0, 3)):
        i = rng.randint(0, len(line))
        op = rng.random()
        if op < 0.4:  # insert
            line = line[:i] + rng.choice(HOSTILE) + line[i:]
        elif op < 0.8:  # replace one character
            line = line[:i] + rng.choice(HOSTILE) + line[i + 1:]
        else:  # drop a piece
            line = line[:i] + line[i + rng.randint(1, 6):]
    return line


def _want(rx, lines: list[str]) -> tuple[list[int], list[tuple[str, ...]], int]:
    """What Python's re gives, each line alone: records (a fit with some field not empty)
    with their numbers and fields, and the count of non-blank lines that do not fit."""
    numbers, rows, bad = [], [], 0
    for number, line in enumerate(lines, 1):
        line = line.removesuffix("\r")  # (the reader takes CRLF as a line end)
        m = rx.match(line)
        if m is None:
            bad += bool(line.strip())
        elif any(m.groups()):
            numbers.append(number)
            rows.append(tuple(v or "" for v in m.groups()))
    return numbers, rows, bad


@pytest.mark.parametrize("case", range(len(CASES)))
def test_re2_reads_hostile_lines_as_python_re_does(case: int) -> None:
    """Differential, fuzz-style: 3,000 mutated lines per format, RE2 through Arrow against
    Python's re on each line alone: the same records, fields, line numbers and count of
    lines that do not fit."""
    (rx, names), good = CASES[case]
    rng = random.Random(1500 + case)
    lines = [_mutate(rng, good) if rng.random() < 0.9 else rng.choice(["", "   ", "\xa0", good])
             for _ in range(3000)]
    assert all(rx.match(line) for line in [good])  # the seed line itself fits
    got = by_pattern([(1, lines_of("\n".join(lines).encode()))], rx, names)
    numbers, rows, bad = _want(rx, lines)
    assert got.line_numbers.tolist() == numbers
    assert got.bad == bad
    fields = [got.fields[n].to_pylist() for n in names]
    assert list(zip(*fields, strict=True)) == rows
    assert 0 < len(numbers) < len(lines) and bad > 0  # the fuzz reached both sides


def test_unicode_digits_and_spaces_are_not_ascii_ones() -> None:
    """A port in Arabic-Indic digits or an address holding a no-break space: text the
    format's ASCII classes do not take, so the line does not fit (counted, quoted), in
    both engines alike."""
    rx, names = nginx.compile_format("$remote_addr $remote_port $status")
    lines = ["10.0.0.1 40000 200", "10.0.0.1 \u0664\u0660 200", "10.0.0.1\xa0x 1 200",
             "10.0.0.1 1 2\u0660\u0660"]
    got = by_pattern([(1, lines_of("\n".join(lines).encode()))], rx, names)
    assert got.line_numbers.tolist() == [1, 3]  # \xa0 is text, not a space
    assert got.fields["remote_addr"].to_pylist() == ["10.0.0.1", "10.0.0.1\xa0x"]
    assert got.bad == 2 and [n for n, _, _ in got.examples] == [2, 4]
    assert _want(rx, lines) == (got.line_numbers.tolist(),
                                [("10.0.0.1", "40000", "200"), ("10.0.0.1\xa0x", "1", "200")], 2)


def test_bytes_that_are_no_utf8_are_read_as_replacement_characters(tmp_path: Path) -> None:
    """A log with bytes that are no UTF-8 (a cut multi-byte character, a lone continuation
    byte, Latin-1) is read as Python's decoder with errors="replace" reads it, line by line:
    no line is lost or merged, each is a record or counted, in any block size."""
    rx, names = nginx.compile_format('$remote_addr [$a] "$b"')
    raw = [b'10.0.0.1 [x] "ok"', b'10.0.0.2 [\xe2\x82] "cut"', b'10.0.0.3 [y] "\x80\xff"',
           b"caf\xe9 [z] \"latin-1\"", b"\xc3", b'10.0.0.4 [\xf0\x9f\x98\x80] "emoji"',
           b"junk \xfe\r", b'10.0.0.5 [w] "end"\r']
    data = b"\n".join(raw) + b"\n"
    log = tmp_path / "bad-utf8.log"
    log.write_bytes(data)
    want_lines = [r.decode("utf-8", errors="replace").removesuffix("\r") for r in raw]
    for size in (7, 64, 1 << 20):
        blocks = list(read_blocks(str(log), size=size))
        assert [t for _, b in blocks for t in b.to_pylist()] == want_lines
        got = by_pattern(blocks, rx, names)
        numbers, rows, bad = _want(rx, want_lines)
        assert got.line_numbers.tolist() == numbers == [1, 2, 3, 4, 6, 8]
        assert list(zip(*[got.fields[n].to_pylist() for n in names], strict=True)) == rows
        assert got.bad == bad == 2 and got.examples[1] == (7, "does not fit the log format", "junk \ufffd")


def test_passes_cut_only_between_top_level_fields() -> None:
    """A pattern is cut before every third top-level field (at most four groups a pass,
    ``rest`` included), never inside a group, a class or an escape, and not at all when it
    is a choice at its top level (HAProxy's two default formats tried at once)."""
    rx, names = nginx.compile_format(BENCH)
    steps = passes(rx.pattern)
    assert len(steps) == 3 and all(s.startswith("^") and s.endswith("$") for s in steps)
    assert [s.count("(?P<") for s in steps] == [4, 4, 3]
    tricky, _ = nginx.compile_format('$a (?P<f9>[x] $b \\$c [$d] $e ($f) $g')
    assert [s.count("(?P<f") for s in passes(tricky.pattern)] == [3, 3, 1]
    http, _ = haproxy.compile_format("http")
    tcp, _ = haproxy.compile_format("tcp", first=100)
    either = f"(?:{http.pattern})|(?:{tcp.pattern})"
    assert passes(either) == [either]
    assert passes("^(?P<f0>a)(?P<f1>b)(?P<f2>c)(?P<f3>d)|x$") == ["^(?P<f0>a)(?P<f1>b)(?P<f2>c)(?P<f3>d)|x$"]
