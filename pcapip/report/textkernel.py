"""The text of many flow rows at once, written byte by byte by one compiled loop.

A flood's table has millions of rows: formatting them cell by cell in Python costs
more than reading the capture, and building the text column by column as numpy
matrices still touches every byte several times. :func:`text_lines` writes a block of
rows straight into a preallocated byte buffer, one pass: decimal integers, ISO 8601
UTC times with nanoseconds, dotted IPv4, and every other text (vocabulary words,
IPv6 addresses, a caller's values) copied from a table of words spelled once each in
Python. Which column is which kind, what separates cells and ends a line, and how a
missing value reads are inputs, so CSV and JSON Lines are the same loop.
"""

from __future__ import annotations

import numpy as np

from pcapip.flows.packed import NO_IP, NULL
from pcapip.sources.accel import kernel, kernel_helper

# how a column's int64 values read (``kinds``)
K_INT = 0  # decimal; NULL missing
K_TIME = 1  # nanoseconds since the epoch as quoted ISO 8601 UTC text; NULL missing
K_IP = 2  # >= 0: quoted dotted IPv4; -1: missing; <= -2: word -2 - value
K_WORD = 3  # a word of the table; < 0: missing


@kernel_helper
def put_bytes(out, at, src, a, b):
    """Copy ``src[a:b]`` to ``out`` at ``at``; the position after it."""
    for k in range(a, b):
        out[at] = src[k]
        at += 1
    return at


# "00" "01" ... "99": two digits a step (half the divisions of one digit a step)
_PAIRS = np.frombuffer(b"".join(b"%02d" % i for i in range(100)), dtype=np.uint8).copy()


@kernel_helper
def put_digits(out, end, v, n):
    """The last ``n`` decimal digits of ``v`` (>= 0) ending before ``end``, zero-padded."""
    k = end
    while n >= 2:
        q = v // 100
        r = 2 * (v - q * 100)
        out[k - 1] = _PAIRS[r + 1]
        out[k - 2] = _PAIRS[r]
        k -= 2
        n -= 2
        v = q
    if n == 1:
        out[k - 1] = 48 + v % 10
    return end


@kernel_helper
def put_uint(out, at, v):
    """Decimal digits of ``v`` (>= 0) at ``at``; the position after them."""
    n = 1
    t = v
    while t >= 10:
        t //= 10
        n += 1
    return put_digits(out, at + n, v, n)


@kernel_helper
def put_fixed(out, at, v, width):
    """``v`` (>= 0) in exactly ``width`` decimal digits, zero-padded."""
    return put_digits(out, at + width, v, width)


@kernel_helper
def put_int(out, at, v):
    """A decimal integer, '-' before a negative one."""
    if v < 0:  # (never NULL: a missing value is a word)
        out[at] = 45
        return put_uint(out, at + 1, -v)
    return put_uint(out, at, v)


@kernel_helper
def put_second(out, at, sec):
    """``YYYY-MM-DDTHH:MM:SS`` of seconds since the epoch (the proleptic Gregorian calendar,
    as numpy's ``datetime_as_string``; days to a date by Howard Hinnant's civil_from_days)."""
    days = sec // 86400
    tod = sec % 86400
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    at = put_fixed(out, at, year, 4)
    out[at] = 45
    at = put_fixed(out, at + 1, month, 2)
    out[at] = 45
    at = put_fixed(out, at + 1, day, 2)
    out[at] = 84
    at = put_fixed(out, at + 1, tod // 3600, 2)
    out[at] = 58
    at = put_fixed(out, at + 1, tod // 60 % 60, 2)
    out[at] = 58
    return put_fixed(out, at + 1, tod % 60, 2)


@kernel_helper
def put_time(out, at, ns, memo):
    """``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` of nanoseconds since the epoch. ``memo`` (second,
    where its text starts in ``out``; -1: none yet) saves spelling one second again: the
    start and end of a flow, and flows in a row, mostly share theirs. The new memo."""
    sec = ns // 1_000_000_000  # (floor division and modulo: before 1970 too)
    last, where = memo
    if where >= 0 and sec == last:
        for k in range(19):
            out[at + k] = out[where + k]
    else:
        put_second(out, at, sec)
        last, where = sec, at
    out[at + 19] = 46
    at = put_fixed(out, at + 20, ns % 1_000_000_000, 9)
    out[at] = 90
    return at + 1, (last, where)


@kernel_helper
def put_v4(out, at, v):
    """Dotted IPv4 text of the address value ``v``."""
    at = put_uint(out, at, (v >> 24) & 255)
    out[at] = 46
    at = put_uint(out, at + 1, (v >> 16) & 255)
    out[at] = 46
    at = put_uint(out, at + 1, (v >> 8) & 255)
    out[at] = 46
    return put_uint(out, at + 1, v & 255)


@kernel_helper
def put_column(out, at, c, v, fmt, memo):
    """Column ``c``'s separator and its cell for value ``v`` (``fmt``: kinds, words, seps,
    quote as text_lines takes them; a missing value is the words' last); (the position
    after them, the time memo). A one-byte separator (CSV's comma) is stored, not copied."""
    kinds, words, seps, quote = fmt
    sep, sep_at = seps
    text, start = words
    a, b = sep_at[c], sep_at[c + 1]
    if b - a == 1:
        out[at] = sep[a]
        at += 1
    else:
        at = put_bytes(out, at, sep, a, b)
    null = start.size - 2
    kind = kinds[c]
    q = quote.size
    if kind == K_TIME:
        if v == NULL:
            return put_bytes(out, at, text, start[null], start[null + 1]), memo
        at = put_bytes(out, at, quote, 0, q)
        at, memo = put_time(out, at, v, memo)
        return put_bytes(out, at, quote, 0, q), memo
    if kind == K_WORD:
        w = v if v >= 0 else null
        return put_bytes(out, at, text, start[w], start[w + 1]), memo
    if kind == K_IP:
        if v <= -2 or v == NO_IP:
            w = -2 - v if v <= -2 else null
            return put_bytes(out, at, text, start[w], start[w + 1]), memo
        at = put_bytes(out, at, quote, 0, q)
        at = put_v4(out, at, v)
        return put_bytes(out, at, quote, 0, q), memo
    if v == NULL:
        return put_bytes(out, at, text, start[null], start[null + 1]), memo
    return put_int(out, at, v), memo


@kernel("i8(i8[:, ::1], i8[::1], Tuple((u1[::1], i8[::1])), Tuple((u1[::1], i8[::1])), u1[::1], u1[::1])")
def text_lines(vals, kinds, words, seps, quote, out):
    """Lines of ``vals.shape[1]`` rows into ``out``; the bytes written. Row ``i``'s cell in
    column ``c`` is ``vals[c, i]`` read as ``kinds[c]``; ``seps`` (bytes, offsets) holds
    what comes before each column's cell and, last, what ends a line; ``quote`` surrounds
    times and IPv4 addresses. ``out`` must hold every line (the caller's bound)."""
    fmt = (kinds, words, seps, quote)
    sep, sep_at = seps
    ncols = kinds.size
    memo = (NULL, -1)  # (the last second spelled, where)
    at = 0
    for i in range(vals.shape[1]):
        for c in range(ncols):
            at, memo = put_column(out, at, c, vals[c, i], fmt, memo)
        at = put_bytes(out, at, sep, sep_at[ncols], sep_at[ncols + 1])
    return at
