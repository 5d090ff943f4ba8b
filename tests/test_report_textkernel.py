"""The compiled text loop (``pcapip.report.textkernel.text_lines``) against independent
spellings: Python's ``str`` for integers, numpy's ``datetime_as_string`` for times,
``ipaddress`` for IPv4; its pure-Python twin and its compiled form byte for byte."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from pcapip.flows.packed import NO_IP, NULL
from pcapip.report import textkernel as T
from pcapip.report.export import _word_table
from pcapip.sources import accel

WORDS = [b"tcp", b'"quoted, text"', "caf\u00e9".encode(), b"2001:db8::1", b""]  # last: missing


def _values(rng: np.random.Generator, n: int) -> np.ndarray:
    """Columns of every kind, with the edges: extreme integers, times before 1970 and
    around leap days and year ends, the smallest and largest addresses, missing values."""
    ints = rng.integers(-(2**63) + 1, 2**63 - 1, n, dtype=np.int64)
    ints[:6] = [0, -1, 9, 10, -(2**63) + 1, 2**63 - 1]
    day = 86_400 * 10**9
    edges = np.array(
        [
            0,
            -1,
            951_782_400 * 10**9 - 1,  # 2000-02-28T23:59:59.999999999
            951_868_800 * 10**9,  # 2000-03-01
            4_107_542_400 * 10**9,  # 2100-03-01
            -(2**63) + 1,
            2**63 - 1,
            1_700_000_000_123_456_789,
        ],
        dtype=np.int64,
    )
    times = rng.integers(-200 * 365 * day, 290 * 365 * day, n, dtype=np.int64)
    times[n // 2 :] = np.sort(times[n // 2 :]) // 10**9  # (runs of rows in one second)
    times[: edges.size] = edges
    ips = rng.integers(0, 2**32, n, dtype=np.int64)
    ips[:5] = [0, 2**32 - 1, NO_IP, -2, -2 - 3]  # missing, words 0 and 3
    words = rng.integers(-1, len(WORDS) - 1, n, dtype=np.int64)
    later = times + rng.integers(0, 2 * 10**9, n)  # (another time, often in the same second)
    later[: edges.size] = edges[::-1]
    for col in (ints, times, later):
        col[rng.random(n) < 0.1] = NULL
    return np.stack([ints, times, ips, words, later])


def _expected(vals: np.ndarray, quote: str, null: str) -> bytes:
    texts = [w.decode() for w in WORDS]
    out = []

    def stamp(t: int) -> str:
        if t == NULL:
            return null
        s = np.datetime_as_string(np.datetime64(t // 10**9, "s"), unit="s")
        return f"{quote}{s}.{t % 10**9:09d}Z{quote}"

    for i in range(vals.shape[1]):
        i_, t, ip, w, t2 = (int(x) for x in vals[:, i])
        cells = [null if i_ == NULL else str(i_), stamp(t)]
        if ip == NO_IP:
            cells.append(null)
        elif ip < NO_IP:
            cells.append(texts[-2 - ip])
        else:
            cells.append(f"{quote}{ipaddress.IPv4Address(ip)}{quote}")
        cells.append(texts[w] if w >= 0 else null)
        cells.append(stamp(t2))
        out.append("<" + "|".join(cells) + ">\n")
    return "".join(out).encode()


def _run(backend: str, vals: np.ndarray, quote: str, null: str) -> bytes:
    kinds = np.array([T.K_INT, T.K_TIME, T.K_IP, T.K_WORD, T.K_TIME], dtype=np.int64)
    words = _word_table([*WORDS[:-1], null.encode()])
    seps = _word_table([b"<", b"|", b"|", b"|", b"|", b">\n"])
    q = np.frombuffer(quote.encode(), dtype=np.uint8).copy()
    out = np.zeros(vals.shape[1] * 200, dtype=np.uint8)
    k = T.text_lines.run(backend, np.ascontiguousarray(vals), kinds, words, seps, q, out)
    return out[:k].tobytes()


@pytest.mark.parametrize(("quote", "null"), [("", ""), ('"', "null")])
def test_text_lines_spell_every_kind_as_python_and_numpy_do(quote: str, null: str) -> None:
    vals = _values(np.random.default_rng(12), 400)
    expect = _expected(vals, quote, null)
    assert _run(accel.BACKEND_PURE, vals, quote, null) == expect
    if accel.compiled_available():
        assert _run(accel.BACKEND_COMPILED, vals, quote, null) == expect
