"""A log file read into records: its own fields, and which of them hold the egress
address, port, time and request duration.

One reader per kind of log (nginx ``log_format``, HAProxy, JSON Lines, CSV); each gives a
:class:`~pcapip.resolve.lines.Parsed`. The fields resolve needs are then picked (given,
or the kind's usual names), the times read (``pcapip.resolve.times``); a record without
an address or a readable time is counted and quoted with the lines that did not parse.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pcapip.errors import UsageError
from pcapip.flows.run import collector_off
from pcapip.resolve import haproxy, nginx, tabular
from pcapip.resolve.api import NAT, Analysis, time_ns
from pcapip.resolve.lines import Parsed, by_pattern, nonempty, read_blocks, read_lines

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("nginx", "haproxy", "jsonl", "csv")
#: usual names of the fields, for logs that name their own (JSON Lines, CSV)
USUAL = {
    "ip": ("remote_addr", "ip", "src_ip", "source_ip", "client_ip", "addr", "remote_ip"),
    "port": ("remote_port", "port", "src_port", "source_port", "client_port"),
    "time": ("time", "timestamp", "@timestamp", "ts", "msec", "time_iso8601", "time_local"),
}


@dataclass
class LogSpec:
    """How to read a log: its kind and format, the fields to use (None: the usual ones),
    times without an offset in ``tz``, text times in ``time_format`` if given."""

    kind: str = "nginx"
    format: str | None = None
    ip_field: str | None = None
    port_field: str | None = None
    time_field: str | None = None
    time_format: str | None = None
    duration_field: str | None = None
    tz: str | None = None


@dataclass
class Log:
    """The records of a log (``frame``: their own fields, as pandas ``str`` columns) with
    their egress ``ip``, ``port`` (-1: none), time (UTC ns) and duration (s, NaN: unknown);
    the fields those came from; what did not parse (``parsed.bad``, ``parsed.examples``)."""

    frame: pd.DataFrame
    line_numbers: np.ndarray
    time: np.ndarray
    duration: np.ndarray | None
    parsed: Parsed
    used: dict[str, str | None] = field(default_factory=dict)
    offsetless: bool = False


def parse(path: str, spec: LogSpec) -> Parsed:
    """The log's records, by kind; those before a compressed log's damage, if it has one
    (``Parsed.damage`` says where)."""
    wanted = [w for w in (spec.ip_field, spec.port_field, spec.time_field,
                          spec.duration_field) if w]
    damage: list[str] = []
    if spec.kind == "nginx":
        rx, names = nginx.compile_format(spec.format or nginx.COMBINED)
        out = by_pattern(read_blocks(path, damage=damage), rx, names)
    elif spec.kind == "haproxy":
        out = _haproxy(read_blocks(path, damage=damage), spec.format)
    elif spec.kind == "jsonl":
        out = tabular.jsonl(read_lines(path, damage), wanted)
    elif spec.kind == "csv":
        out = tabular.csv_rows(read_lines(path, damage), wanted)
    else:
        raise UsageError(f"unknown log kind {spec.kind!r}")
    out.damage = damage[0] if damage else None
    return out


def _haproxy(blocks: Iterable[tuple[int, pa.Array]], fmt: str | None) -> Parsed:
    """HAProxy's log: one format given, or its HTTP and TCP defaults tried line by line."""
    if fmt:
        rx, names = haproxy.compile_format(fmt)
        out = by_pattern(blocks, rx, names)
    else:
        import re

        rx_h, names_h = haproxy.compile_format("http")
        rx_t, names_t = haproxy.compile_format("tcp", first=len(names_h))
        either = re.compile(f"(?:{rx_h.pattern})|(?:{rx_t.pattern})")
        groups = [*names_h, *names_t]
        raw = by_pattern(blocks, either, [f"{i}" for i in range(len(groups))])
        fields = {}
        for name in [*names_h, *(n for n in names_t if n not in names_h)]:
            # a line is one of the two formats: its field is the group that took a value
            cols = [_blank_null(raw.fields[str(i)]) for i, g in enumerate(groups) if g == name]
            fields[name] = pc.coalesce(*cols[::-1]) if len(cols) > 1 else cols[0]
        out = Parsed(fields, raw.line_numbers, raw.bad, raw.examples)
    for name in [n for n in out.fields if n == "r" or n.startswith("[")]:
        out.fields[name] = haproxy.unquote(out.fields[name])
    for name in [n for n in out.fields if n in haproxy.OPTIONAL]:  # left out: no captures
        out.fields[name] = _blank_null(out.fields[name])
    return out


def _blank_null(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Empty texts as missing."""
    return pc.if_else(nonempty(col), col, pa.scalar(None, col.type))


def _pick(given: str | None, parsed: Parsed, usual: tuple[str, ...], what: str,
          needed: bool) -> str | None:
    fields = parsed.fields
    if given is not None:
        if given not in fields:
            raise UsageError(f"--{what}-field {given!r}: the log has {_names(parsed)}")
        return given
    found = next((u for u in usual if u in fields), None)
    if found is None and needed:
        raise UsageError(f"no {what} field found: name it with --{what}-field ({_names(parsed)})")
    return found


def _names(parsed: Parsed) -> str:
    """The log's fields, or why it has none: its lines that did not parse, the first quoted."""
    if parsed.fields:
        return "fields " + ", ".join(parsed.fields)
    if not parsed.examples:
        return "no records"
    number, why, text = parsed.examples[0]
    return (f"no records: {parsed.bad:,} line{'s' * (parsed.bad != 1)} did not parse, "
            f"the first, line {number}: {why}: {text[:80]}")


def usual_fields(kind: str) -> dict[str, tuple[str, ...]]:
    """Where each kind keeps the egress address, port, time and request duration."""
    if kind == "nginx":
        return {"ip": ("remote_addr",), "port": ("remote_port",), "time": nginx.TIME_FIELDS,
                "duration": ("request_time",)}
    if kind == "haproxy":
        return {"ip": ("ci",), "port": ("cp",), "time": haproxy.TIME_FIELDS, "duration": ()}
    return {**USUAL, "duration": ()}


@collector_off()
def load(path: str, spec: LogSpec) -> Log:
    """Read the log, pick its fields, read its times; set aside records without an address
    or a readable time (counted and quoted with the unparseable lines). Without the cyclic
    collector: a log's millions of records make no cycles, yet each collection rescanned
    them all (half the time of reading a 1M-line log)."""
    import pandas as pd

    parsed = parse(path, spec)
    fields = parsed.fields
    usual = usual_fields(spec.kind)
    some = len(parsed) > 0
    ip = _pick(spec.ip_field, parsed, usual["ip"], "ip", some)
    port = _pick(spec.port_field, parsed, usual["port"], "port", False)
    time_names = [spec.time_field] if spec.time_field else [n for n in usual["time"] if n in fields]
    if spec.time_field:
        _pick(spec.time_field, parsed, (), "time", True)
    elif not time_names and some:
        raise UsageError(f"no time field found: name it with --time-field ({_names(parsed)})")
    duration = _pick(spec.duration_field, parsed, usual["duration"], "duration", False)
    n = len(parsed)
    raw_time = _coalesce([fields[t] for t in time_names], n)
    t = time_ns(raw_time, tz=spec.tz, time_format=spec.time_format)
    ok = t != NAT
    if ip is not None:
        ok &= nonempty(fields[ip]).to_numpy(zero_copy_only=False)
    _reject_records(parsed, ok, t, raw_time)
    keep = np.flatnonzero(ok)
    every = len(keep) == n
    frame = pd.DataFrame({k: _text_column(v if every else v.take(pa.array(keep)))
                          for k, v in fields.items()})
    dur = None
    if duration is not None:
        from pcapip.resolve.api import numbers

        dur = numbers(frame[duration])
    from pcapip.resolve.times import has_offset

    return Log(
        frame=frame,
        line_numbers=np.asarray(parsed.line_numbers, dtype=np.int64)[keep],
        time=t[keep],
        duration=dur,
        parsed=parsed,
        used={"ip": ip, "port": port, "time": "|".join(time_names) or None, "duration": duration},
        offsetless=bool(n) and (
            "%z" not in spec.time_format if spec.time_format else not has_offset(raw_time)
        ),
    )


def _reject_records(parsed: Parsed, ok: np.ndarray, t: np.ndarray, raw_time: pa.ChunkedArray) -> None:
    """Records without a readable time or an address counted, the first few quoted."""
    from pcapip.resolve.lines import EXAMPLES

    bad = np.flatnonzero(~ok)
    for i in bad[:EXAMPLES].tolist():
        why = "no readable time" if t[i] == NAT else "no address"
        parsed.reject(int(parsed.line_numbers[i]), why,
                      f"{raw_time[i].as_py()!r}" if t[i] == NAT else "")
    parsed.bad += max(len(bad) - EXAMPLES, 0)


def _text_column(values: pa.ChunkedArray) -> pd.Series:
    """An Arrow text column as pandas' text column (``str``: Arrow-backed, NaN missing),
    without a Python object per value."""
    import pandas as pd

    dtype = pd.StringDtype("pyarrow", na_value=np.nan)
    return pd.Series(pd.arrays.ArrowStringArray(values.cast(pa.large_string()), dtype=dtype))


def _coalesce(columns: list[pa.ChunkedArray], n: int) -> pa.ChunkedArray:
    """Per record, the first of ``columns`` that has a value (HAProxy's TCP lines say %t,
    its HTTP lines %tr)."""
    if not columns:
        return pa.chunked_array([pa.nulls(n, pa.large_string())])
    first = columns[0]
    if len(columns) == 1 or pc.all(nonempty(first)).as_py() is not False:
        return first  # (nginx's $msec beside $time_local)
    return pc.coalesce(*(_blank_null(c) for c in columns))


def resolve_log(
    analysis: Analysis,
    path: str,
    spec: LogSpec | None = None,
    *,
    tolerance: float = 1.0,
    origin_port: int | None = None,
) -> pd.DataFrame:
    """A log file (``spec``: its kind, format, fields, time zone; default nginx's combined)
    read and resolved against ``analysis``: what ``pcapip resolve`` writes, as a frame.
    ``frame.attrs["unparseable"]`` counts the lines that were no record and
    ``frame.attrs["examples"]`` quotes the first few as (line number, why, text);
    ``frame.attrs["damage"]`` says where a compressed log broke off (None: it did not),
    its records before that resolved. The log's own fields are pandas ``str`` columns
    (Arrow-backed, NaN where a field is left out)."""
    df = resolve_loaded(analysis, load(path, spec or LogSpec()), tolerance=tolerance,
                        origin_port=origin_port)
    return df


@collector_off()
def resolve_loaded(
    analysis: Analysis, log: Log, *, tolerance: float = 1.0, origin_port: int | None = None
) -> pd.DataFrame:
    """A loaded log's records with their clients (:func:`resolve_log` after reading)."""
    from pcapip.resolve.api import resolve_times

    df = resolve_times(analysis, log.frame, ip=log.used["ip"] or "", port=log.used["port"],
                       t=log.time, duration=log.duration, tolerance=tolerance,
                       origin_port=origin_port)
    df.attrs["unparseable"] = log.parsed.bad
    df.attrs["examples"] = sorted(log.parsed.examples)
    df.attrs["damage"] = log.parsed.damage
    return df
