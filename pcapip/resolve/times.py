"""Log times to UTC nanoseconds: the offsets a log writes, ``--tz`` for those it does not.

Captures are UTC. A log's times come in a few spellings (nginx's ``$time_local``,
``$time_iso8601``, ``$msec``; HAProxy's ``%t``; epoch numbers; a strftime pattern);
each parser works on a column at once and on its distinct values only (a busy log repeats
each second thousands of times), and gives NaT where a value cannot be read.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from pcapip.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

NS = 1_000_000_000
#: nginx's $time_local, HAProxy's %T / %Tl: ``10/Oct/2000:13:55:36 -0700``
CLF = "%d/%b/%Y:%H:%M:%S %z"
#: HAProxy's %t / %tr: ``06/Feb/2009:12:14:14.655`` (local time, no offset)
HAPROXY_MS = "%d/%b/%Y:%H:%M:%S.%f"
_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")
_CLF_RX = re.compile(r"^\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d")
_FIXED = re.compile(r"^(?:UTC|GMT)?([+-])(\d\d):?(\d\d)$")


def zone(tz: str | None) -> Any:
    """``--tz``: an IANA zone name (``Europe/Paris``), ``UTC`` or a fixed offset (``+05:30``)."""
    if tz is None or tz.upper() in ("UTC", "Z", "GMT"):
        return dt.UTC
    m = _FIXED.match(tz.strip())
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return dt.timezone(sign * dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz {tz!r}: not a time zone (e.g. UTC, +05:30, Europe/Paris)") from None


def arrow_text(values: Any) -> Any:
    """``values`` as an Arrow text column when they are one (an Arrow array, or a pandas
    column backed by one: what the log readers give), else None."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(values, pa.Array):
        values = pa.chunked_array([values])
    if isinstance(values, pa.ChunkedArray):
        return values if _is_text(values.type) else None
    dtype = getattr(values, "dtype", None)
    if isinstance(values, pd.Series | pd.Index) and (
        (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow")
        or (isinstance(dtype, pd.ArrowDtype) and _is_text(dtype.pyarrow_dtype))
    ):
        return pa.chunked_array(pa.array(values.array))
    return None


def _is_text(t: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t)


def distinct(values: Any) -> tuple[np.ndarray, list[Any]]:
    """Each value's code (-1: missing) into the distinct values, those as a list: a column
    is read once per distinct value (an Arrow text column without a Python object per
    value)."""
    import pandas as pd

    text = arrow_text(values)
    if text is not None:
        import pyarrow.compute as pc

        d = pc.dictionary_encode(text.combine_chunks())
        codes = pc.fill_null(d.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        return codes, d.dictionary.to_pylist()
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return codes, list(np.asarray(uniques, dtype=object))


def first_text(values: Any) -> str | None:
    """The column's first value that is not missing, empty or ``-``, as text."""
    text = arrow_text(values)
    if text is not None:
        import pyarrow.compute as pc

        some = text.filter(pc.and_(pc.greater(pc.binary_length(text), 0), pc.not_equal(text, "-")))
        return some[0].as_py() if len(some) else None
    for v in values:
        if v is None or str(v) in ("", "-"):
            continue
        return str(v)
    return None


def _per_distinct(values: Any, parse: Any) -> np.ndarray:
    """``parse`` (distinct strings -> int64 ns with NaT as min) applied to each distinct value."""
    import pandas as pd

    codes, uniques = distinct(values)
    out = np.full(len(codes), np.iinfo(np.int64).min, dtype=np.int64)
    if len(uniques):
        parsed = parse(pd.Series(np.asarray(uniques, dtype=object)).astype(str))
        ok = codes >= 0
        out[ok] = parsed[codes[ok]]
    return out


def ns_of(stamps: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """UTC nanoseconds of tz-aware times; NaT stays as int64's minimum."""
    import pandas as pd

    idx = pd.DatetimeIndex(stamps)
    # a year nanoseconds cannot hold (pandas reads "-1" as year -1) is no time
    inside = (idx >= pd.Timestamp("1678-01-01", tz=idx.tz)) & (
        idx <= pd.Timestamp("2261-12-31", tz=idx.tz))
    return idx.where(inside).as_unit("ns").asi8.copy()


def localized(naive: pd.Series, tz: Any) -> np.ndarray:
    if tz is dt.UTC:
        return ns_of(naive.dt.tz_localize("UTC"))
    local = naive.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    return ns_of(local.dt.tz_convert("UTC"))


def with_pattern(values: Any, pattern: str, tz: Any) -> np.ndarray:
    """Times written with a strftime ``pattern``; an offset in it (``%z``) wins over ``tz``."""
    import pandas as pd

    def parse(s: pd.Series) -> np.ndarray:
        if "%z" in pattern or "%Z" in pattern:  # each value's own offset, maybe several
            return ns_of(pd.to_datetime(s, format=pattern, errors="coerce", utc=True))
        return localized(pd.to_datetime(s, format=pattern, errors="coerce"), tz)

    return _per_distinct(values, parse)


def iso8601(values: Any, tz: Any) -> np.ndarray:
    """ISO 8601 times; each value's own offset (or ``Z``) wins, ``tz`` places the rest."""
    import pandas as pd

    def parse(s: pd.Series) -> np.ndarray:
        out = np.full(len(s), np.iinfo(np.int64).min, dtype=np.int64)
        has = s.str.contains(_OFFSET).to_numpy(dtype=bool)
        if has.any():
            out[has] = ns_of(pd.to_datetime(s[has], format="ISO8601", errors="coerce", utc=True))
        if (~has).any():
            naive = pd.to_datetime(s[~has], format="ISO8601", errors="coerce")
            out[~has] = localized(naive, tz)
        return out

    return _per_distinct(values, parse)


def epoch(values: Any) -> np.ndarray:
    """Epoch numbers: seconds (``$msec``, ``%Ts``), or milli-, micro-, nanoseconds by size."""
    import pandas as pd

    def parse(s: pd.Series) -> np.ndarray:
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        scale = np.select([x < 1e11, x < 1e14, x < 1e17], [NS, 1e6, 1e3], 1.0)
        out = np.full(len(x), np.iinfo(np.int64).min, dtype=np.int64)
        ns = x * scale
        ok = np.isfinite(ns) & (ns >= 0) & (ns < 2**62)  # an absurd number is no time
        out[ok] = np.round(ns[ok]).astype(np.int64)
        return out

    return _per_distinct(values, parse)


def auto(values: Any, tz: Any) -> np.ndarray:
    """Epoch numbers, nginx's ``$time_local`` or ISO 8601, told apart by the first value."""
    first = first_text(values) or ""
    if re.fullmatch(r"\d+(?:\.\d+)?", first):
        return epoch(values)
    if _CLF_RX.match(first):
        return with_pattern(values, clf_pattern(first), tz)
    return iso8601(values, tz)


def clf_pattern(first: str) -> str:
    """The pattern of a ``dd/Mon/yyyy:HH:MM:SS`` time as ``first`` writes it: with an
    offset (nginx, HAProxy's %T), with milliseconds (HAProxy's %t), or bare."""
    if _OFFSET.search(first.replace(" ", "")):
        return CLF
    return HAPROXY_MS if first[20:21] == "." else "%d/%b/%Y:%H:%M:%S"


def has_offset(values: Any) -> bool:
    """Whether the column's first value names its offset (``-0700``, ``+02:00``, ``Z``) or is
    an epoch number: else ``--tz`` (UTC by default) places it."""
    text = first_text(values)
    if text is None:
        return True
    return bool(_OFFSET.search(text.replace(" ", "")) or re.fullmatch(r"\d+(?:\.\d+)?", text))
