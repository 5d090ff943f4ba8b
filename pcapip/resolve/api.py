"""``pcapip.resolve``: a frame of log records, each given the real client of the connection
it came from (the columns of ``pcapip.resolve.columns``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pcapip.errors import UsageError
from pcapip.resolve import times
from pcapip.resolve.columns import ADDED_COLUMNS
from pcapip.resolve.join import join

if TYPE_CHECKING:
    import pandas as pd

# ``analysis`` arguments are pcapip.report.analysis.Analysis objects (named, not imported:
# Analysis.resolve calls this module, and a stage's modules never import each other back)
Analysis = Any

NAT = np.iinfo(np.int64).min
#: default widening of a record's window when no connection meets it (seconds)
TOLERANCE = 1.0


def time_ns(col: Any, *, tz: str | None = None, time_format: str | None = None) -> np.ndarray:
    """A column of times as UTC nanoseconds (int64's minimum where unreadable): datetimes
    (naive ones placed by ``tz``), epoch numbers, or text (``time_format``, else told
    apart: epoch, ``dd/Mon/yyyy:HH:MM:SS``, ISO 8601); an offset a value names wins."""
    import pandas as pd

    zone = times.zone(tz)
    text = times.arrow_text(col)
    if text is not None:  # a log's text column: read per distinct value, no object per record
        return times.with_pattern(text, time_format, zone) if time_format else times.auto(text, zone)
    s = pd.Series(col).reset_index(drop=True)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return times.ns_of(s.dt.tz_convert("UTC"))
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return times.localized(s, zone)
    if pd.api.types.is_numeric_dtype(s.dtype) and time_format is None:
        return times.epoch(s)
    values = s.astype(object).where(s.notna(), None)
    if time_format:
        return times.with_pattern(values, time_format, zone)
    return times.auto(values, zone)


def step(ns: np.ndarray) -> int:
    """The time step the log writes: 1 s when every time is whole seconds, else 1 ms or
    1 µs likewise, else 1 ns."""
    ok = ns[ns != NAT]
    for unit in (times.NS, 1_000_000, 1_000):
        if len(ok) and not (ok % unit).any():
            return unit
    return 1 if len(ok) else times.NS


def window(
    t: np.ndarray, duration: np.ndarray | None = None, resolution: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each record's ``[lo, hi]``: its logged time (less its duration in seconds, where
    known) to that time plus the log's time step."""
    res = step(t) if resolution is None else resolution
    lo = t.copy()
    if duration is not None:
        d = np.nan_to_num(np.asarray(duration, dtype=float), nan=0.0)
        lo = t - np.round(np.clip(d, 0, None) * times.NS).astype(np.int64)
    return lo, t + res


def ports(col: Any) -> np.ndarray:
    """Ports as int64, -1 where not logged or not a port (read once per distinct value)."""
    codes, p = _distinct_numbers(col)
    ok = np.isfinite(p) & (p >= 0) & (p <= 65535) & (p == np.round(p))
    value = np.append(np.where(ok, np.nan_to_num(p), -1).astype(np.int64), -1)
    return value[codes]  # code -1 picks the trailing -1


def resolve(
    analysis: Analysis,
    records: pd.DataFrame,
    *,
    ip: str,
    port: str | None = None,
    time: str,
    tz: str | None = None,
    time_format: str | None = None,
    duration: str | None = None,
    tolerance: float = TOLERANCE,
    origin_port: int | None = None,
) -> pd.DataFrame:
    """``records`` with the real client of each record's connection: the columns ``ip``
    (egress address), ``port`` (egress port; None: match by address only, and only when
    one connection from it was open), ``time`` (when the record was written) name its
    fields. ``duration``: a field holding the request's seconds (nginx's
    ``$request_time``). ``tolerance``: seconds a window is widened when no connection
    meets it. ``origin_port``: only connections to that port. Returns a new frame: the
    records' columns (a name resolve adds is kept as ``log_<name>``) plus
    ``client_ip``, ``client_port``, ``method``, ``flow``, ``match``, ``candidates``.
    One interval join (sorts and binary searches), not a loop over records."""
    for name in (ip, port, time, duration):
        if name is not None and name not in records.columns:
            raise UsageError(f"no column {name!r} in the records ({', '.join(map(str, records.columns))})")
    if tolerance < 0:
        raise UsageError(f"tolerance must be 0 or more seconds, not {tolerance}")
    t = time_ns(records[time], tz=tz, time_format=time_format)
    dur = None if duration is None else numbers(records[duration])
    return resolve_times(analysis, records, ip=ip, port=port, t=t, duration=dur,
                         tolerance=tolerance, origin_port=origin_port)


def resolve_times(
    analysis: Analysis,
    records: pd.DataFrame,
    *,
    ip: str,
    port: str | None,
    t: np.ndarray,
    duration: np.ndarray | None = None,
    tolerance: float = TOLERANCE,
    origin_port: int | None = None,
) -> pd.DataFrame:
    """:func:`resolve` with the records' times already read (UTC ns, ``NAT`` unreadable)
    and durations in seconds."""
    lo, hi = window(t, duration)
    # (an empty log has no field at all)
    addresses = records[ip] if ip in records.columns else np.full(len(records), None, dtype=object)
    bad = t == NAT
    lo[bad], hi[bad] = 0, 0
    p = ports(records[port]) if port is not None else np.full(len(records), -1, np.int64)
    added = join(  # a record without a readable time meets no connection
        analysis, addresses, p, lo, hi, tolerance_ns=int(tolerance * times.NS),
        origin_port=origin_port, known=~bad,
    )
    return attach(records, added)


def numbers(col: Any) -> np.ndarray:
    """A column as float numbers, NaN where not one (read once per distinct value)."""
    codes, value = _distinct_numbers(col)
    return np.append(value, np.nan)[codes]  # code -1 picks NaN


def _distinct_numbers(col: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each value's code into the distinct values (-1: missing), and those as float
    numbers (NaN: not a number)."""
    import pandas as pd

    codes, uniques = times.distinct(col)
    value = pd.to_numeric(pd.Series(np.asarray(uniques, dtype=object)), errors="coerce")
    return codes, value.to_numpy(dtype=float)


def attach(records: pd.DataFrame, added: dict[str, Any]) -> pd.DataFrame:
    """The records' own columns, then the added ones; an own column with an added name
    is renamed ``log_<name>``."""
    import pandas as pd

    own = records.reset_index(drop=True)
    own = own.rename(columns={c: f"log_{c}" for c in own.columns if c in ADDED_COLUMNS})
    extra = pd.DataFrame({k: pd.Series(v).reset_index(drop=True) for k, v in added.items()})
    return pd.concat([own, extra], axis=1)
