"""``Analysis``: the flow table as pandas frames, and its exports.

Frames are built on first access, so the CLI writing CSV never builds the
egress/client summaries it does not print, and ``import pcapip`` stays cheap.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from pcapip.errors import CaptureError, CaptureWarning, UsageError
from pcapip.flows.columns import SCHEMA, Column
from pcapip.flows.findings import CATALOGUE, Level
from pcapip.flows.oddities import ToaKindSeen
from pcapip.flows.table import FlowTable

if TYPE_CHECKING:
    import pandas as pd

BY_CHOICES = ("flow", "egress", "client", "origin", "rule")

#: The grouped frames' columns, declared once (``--by egress|client|origin`` and the API).
#: ``problems``: flows with a warning or error finding; ``findings``: per code, the number
#: of flows that have it (``client.missing=3;origin.rejected=1``, most severe first).
GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "egress": (
        "egress_ip", "flows", "clients", "methods", "problems", "findings",
        "first_seen", "last_seen",
    ),
    "client": (
        "client_ip", "flows", "egress_count", "egress_ips", "problems", "findings",
        "first_seen", "last_seen",
    ),
    "origin": (
        "origin_ip", "origin_port", "flows", "egress_count", "clients", "methods", "problems",
        "findings", "first_seen", "last_seen",
    ),
}
_PORT = "UInt16"


def _series(col: Column, values: list[Any]) -> Any:
    """One column of ``Analysis.flows`` in the pandas form its declared kind has."""
    if col.kind == "int":
        return np.asarray(values, dtype=np.int64)
    if col.kind == "port":
        return _ports(values)
    if col.kind == "time":
        return _times(values)
    if col.kind == "text" or col.distinct:
        import pandas as pd

        return pd.array(values, dtype="string")
    return _cat(values, col.vocabulary)


def _cat(values: list[Any], categories: Sequence[str] | None = None) -> pd.Categorical:
    import pandas as pd
    return pd.Categorical(values, categories=categories) if categories else pd.Categorical(values)


def _ports(values: list[int | None]) -> pd.arrays.IntegerArray:
    import pandas as pd
    return pd.array(values, dtype=_PORT)


def _times(ns: list[int]) -> pd.DatetimeIndex:
    import pandas as pd
    return pd.to_datetime(np.asarray(ns, dtype=np.int64), unit="ns", utc=True)


class _OneAtATime:
    """A table's columns as lists built on each access and not kept: each is converted to
    its pandas form at once, so a large table never exists as Python lists whole."""

    def __init__(self, table: FlowTable) -> None:
        self.table = table

    def __getitem__(self, name: str) -> list[Any]:
        return self.table.columns.slice(name, 0, len(self.table))


class Analysis:
    """Everything ``pcapip analyze`` found in one or more captures.

    * ``flows``: one row per flow (the documented schema, same columns as the exports);
    * ``egress``: per egress (proxy) IP: flows, distinct clients, methods, first/last seen;
    * ``clients``: per client IP: flows and the egress IPs that carried it;
    * ``origins``: per origin ip:port (listener): flows, egress IPs, clients, methods;
      the three grouped frames also count ``problems`` and per-code ``findings``;
    * ``findings``: one row per finding (flow, capture, packet, severity, code, message);
    * ``stats``: counters, including the ``toa_stats``-style handshake counts;
    * ``errors``: capture damage met while reading (everything before it is analysed),
      and captures none of whose packets could be decoded;
    * ``warnings``: oddities that did not stop reading (``CaptureWarning``: file, packet,
      byte offset, message; repeats summarised), the same list as ``table.warnings``;
    * ``announcers``, ``toa_kinds``, ``undecoded``: see :class:`FlowTable`.
    """

    def __init__(self, table: FlowTable, errors: Sequence[CaptureError] = ()) -> None:
        self.table = table
        self.errors: list[CaptureError] = list(errors)
        self.warnings: list[CaptureWarning] = table.warnings
        self.captures: list[str] = list(table.captures)
        #: the table rows (0-based positions) this analysis shows; None: all of them
        self.selection: np.ndarray | None = None
        #: per capture, the vantage point it belongs to (``group_by_dir``); None: one
        self.capture_groups: list[str] | None = None

    @property
    def announcers(self) -> dict[str, int]:
        """Source addresses that announced a client (TOA/PROXY) -> flows, most first."""
        return self.table.announcers

    @property
    def toa_kinds(self) -> list[ToaKindSeen]:
        """The TOA kinds/lengths that carried clients, with their flows."""
        return self.table.toa_kinds

    @property
    def undecoded(self) -> dict[str, int]:
        """Why packets gave no TCP/UDP flow: reason -> packets."""
        return self.table.undecoded

    def __repr__(self) -> str:
        s = self.table.stats
        of = f" of {len(self.table)}" if self.selection is not None else ""
        return (
            f"<Analysis {len(self)}{of} flows from {s.get('packets', 0)} packets in "
            f"{len(self.captures)} capture(s), {len(self.findings)} findings>"
        )

    def __len__(self) -> int:
        return len(self.table) if self.selection is None else len(self.selection)

    def filter(self, expr: str = "", *, problems: bool = False) -> Analysis:
        """The flows matching filter ``expr`` (the TUI's language, ``pcapip.report.filters``)
        as a new Analysis: ``flows``, ``egress``, ``clients``, ``origins``, ``findings`` and
        the exports cover only them, and flows keep their numbers. ``problems``: only flows
        with a warning or error finding. ``stats`` and ``errors`` stay the captures' own.

        A bad expression raises ``filters.FilterError`` (a ValueError naming the column).
        For a plain boolean mask over ``flows`` use ``filters.evaluate(expr, a.flows)``.
        """
        from pcapip.report.filters import evaluate, problem_mask

        mask = evaluate(expr, self.flows)  # (as typed: its error columns are the user's)
        if problems:
            mask &= problem_mask(self.flows)
        view = Analysis(self.table, self.errors)
        view.capture_groups = self.capture_groups
        base = np.arange(len(self.table)) if self.selection is None else self.selection
        view.selection = base[mask]
        flows = self.flows[mask].reset_index(drop=True)
        fnd = self.findings
        # (cached_property keeps its value in the instance dict: the view starts from them)
        view.__dict__["flows"] = flows
        view.__dict__["findings"] = fnd[fnd["flow"].isin(flows["flow"])].reset_index(drop=True)
        return view

    # ------------------------------------------------------------------ frames
    @cached_property
    def flows(self) -> pd.DataFrame:
        """One row per flow: the declared columns (``pcapip.flows.columns``), typed by kind."""
        import pandas as pd

        c = _OneAtATime(self.table)
        return pd.DataFrame({col.name: _series(col, c[col.name]) for col in SCHEMA})

    @cached_property
    def egress(self) -> pd.DataFrame:
        """Per egress (proxy) IP: flows, distinct clients, methods, finding counts, times."""
        return _grouped(self.flows, "egress")

    @cached_property
    def clients(self) -> pd.DataFrame:
        """Per client IP: flows, the egress IPs that carried it, finding counts, times."""
        f = self.flows
        return _grouped(f[f["client_ip"].notna()], "client")

    @cached_property
    def origins(self) -> pd.DataFrame:
        """Per origin ip:port (the listener): flows, egress IPs, clients, methods, finding
        counts, times: a listener whose proxies do not all send the header shows here."""
        return _grouped(self.flows, "origin")

    @cached_property
    def rules(self) -> pd.DataFrame:
        """Per forwarding rule of ``rules=`` (``--rules``): flows by method and mismatched,
        then the origins no rule covers (``pcapip.report.byrule``)."""
        from pcapip.report.byrule import by_rule

        if self.table.rules is None:
            raise UsageError("the by-rule summary needs the forwarding rules (--rules FILE)")
        return by_rule(self.flows, self.table.rules)

    @cached_property
    def findings(self) -> pd.DataFrame:
        import pandas as pd
        fs = self.table.findings
        caps = self.captures
        return pd.DataFrame(
            {
                "flow": np.asarray([f.flow for f in fs], dtype=np.int64),
                "capture": _cat(
                    [caps[f.capture] if f.capture < len(caps) else str(f.capture) for f in fs]
                ),
                "packet": pd.array([f.frame for f in fs], dtype="Int64"),
                "severity": _cat(
                    [CATALOGUE[f.code].level.label for f in fs], ("info", "warning", "error")
                ),
                "code": _cat([f.code for f in fs]),
                "message": pd.array([f.message for f in fs], dtype="string"),
            }
        )

    @property
    def stats(self) -> dict[str, int]:
        return self.table.stats

    def header_frames(self, flow: int) -> list[tuple[int, int]]:
        """(capture index, packet number) of the packets that carried flow ``flow``'s client address."""
        return list(self.table.header_frames.get(flow, []))

    def worst_level(self) -> Level | None:
        """The most severe finding level present, or None without findings."""
        if self.selection is None:
            return self.table.worst_level()
        return max((CATALOGUE[c].level for c in set(self.findings["code"])), default=None)

    def frame(self, by: str = "flow") -> pd.DataFrame:
        if by not in BY_CHOICES:
            raise UsageError(f"by must be one of {', '.join(BY_CHOICES)}, not {by!r}")
        return {
            "flow": lambda: self.flows,
            "egress": lambda: self.egress,
            "client": lambda: self.clients,
            "origin": lambda: self.origins,
            "rule": lambda: self.rules,
        }[by]()

    def resolve(
        self, records: pd.DataFrame, *, ip: str, port: str | None = None, time: str, **options: Any
    ) -> pd.DataFrame:
        """The log ``records`` (one row per request), each with the real client of the
        connection it came from: columns ``ip`` (egress address), ``port`` (egress port;
        None: by address, and only when one connection was open then) and ``time``; the
        added columns and ``options`` (``tz``, ``time_format``, ``duration``, ``tolerance``,
        ``origin_port``) are ``pcapip.resolve.resolve``'s. A vectorised interval join."""
        from pcapip.resolve.api import resolve

        return resolve(self, records, ip=ip, port=port, time=time, **options)

    # ------------------------------------------------------------------ exports
    def to_csv(
        self, path_or_buf: str | os.PathLike[str] | IO[str] | None = None, *, by: str = "flow"
    ) -> str | None:
        """CSV of the chosen frame (timestamps ISO 8601 UTC, empty cells for missing values)."""
        if by == "flow":
            from pcapip.report.export import write_csv

            buf = io.StringIO()
            write_csv(self.table, buf, rows=self.selection)
            return _emit(buf.getvalue(), path_or_buf)
        df = _for_text(self.frame(by))
        text = df.to_csv(index=False, lineterminator="\n")
        return _emit(text, path_or_buf)

    def to_jsonl(
        self, path_or_buf: str | os.PathLike[str] | IO[str] | None = None, *, by: str = "flow"
    ) -> str | None:
        """JSON Lines: one object per row, null for missing values."""
        if by == "flow":
            from pcapip.report.export import write_jsonl

            buf = io.StringIO()
            write_jsonl(self.table, buf, rows=self.selection)
            return _emit(buf.getvalue(), path_or_buf)
        df = _for_text(self.frame(by))
        records = df.astype(object).where(df.notna(), None).to_dict("records")
        buf = io.StringIO()
        for r in records:
            buf.write(json.dumps(r, default=_json_default, ensure_ascii=False))
            buf.write("\n")
        return _emit(buf.getvalue(), path_or_buf)

    def to_parquet(self, path: str | os.PathLike[str] | IO[bytes], *, by: str = "flow") -> None:
        """Parquet with native types: timestamp[ns, UTC], dictionary-encoded text, nullable ports."""
        self.frame(by).to_parquet(path, index=False, engine="pyarrow")


_GROUP_KEYS = {"egress": ("egress_ip",), "client": ("client_ip",), "origin": ("origin_ip", "origin_port")}


def _joined_set(s: pd.Series) -> str:
    import pandas as pd
    return ",".join(sorted({str(x) for x in s if not pd.isna(x)}))


def _grouped(f: pd.DataFrame, by: str) -> pd.DataFrame:
    """One row per group of flows ``by`` (GROUP_COLUMNS), most flows first."""
    import pandas as pd

    from pcapip.report.filters_terms import count_codes, problem_mask

    cols = list(GROUP_COLUMNS[by])
    keys = list(_GROUP_KEYS[by])
    if f.empty:
        return pd.DataFrame({k: [] for k in cols})
    f = f.assign(_problem=problem_mask(f))
    g = f.groupby(keys, observed=True, sort=True)
    parts = {
        "flows": g.size(),
        "clients": g["client_ip"].nunique(),
        "egress_count": g["egress_ip"].nunique(),
        "methods": g["method"].agg(_joined_set),
        "egress_ips": g["egress_ip"].agg(_joined_set),
        "problems": g["_problem"].sum().astype(np.int64),
        "findings": g["findings"].agg(count_codes),
        "first_seen": g["start"].min(),
        "last_seen": g["end"].max(),
    }
    out = pd.DataFrame({k: v for k, v in parts.items() if k in cols}).reset_index()
    for k in keys:
        if k.endswith("_ip"):
            out[k] = out[k].astype(str)
    out = out.sort_values(["flows", *keys], ascending=[False] + [True] * len(keys), kind="stable")
    return out[cols].reset_index(drop=True)


def _iso(s: pd.Series) -> pd.Series:
    out = s.dt.strftime("%Y-%m-%dT%H:%M:%S")
    ns = (s.astype("int64") % 1_000_000_000).astype("int64")
    frac = ns.map(lambda v: f".{v:09d}")
    return (out + frac + "Z").where(s.notna(), None)


def _for_text(df: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd
    df = df.copy()
    for c in df.columns:
        if isinstance(df[c].dtype, pd.DatetimeTZDtype):
            df[c] = _iso(df[c])
    return df


def _json_default(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return str(v)


def _emit(text: str, target: str | os.PathLike[str] | IO[str] | None) -> str | None:
    if target is None:
        return text
    if isinstance(target, str | os.PathLike):
        with open(target, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        return None
    target.write(text)
    return None
