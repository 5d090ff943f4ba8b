"""The rows behind the flows table: all flows, the filtered and sorted view, the groupings.

The table widget draws only the lines on screen and asks this model for
them, so a capture with a million flows costs one pandas frame and a few
numpy index arrays, never a widget per row. Rows arrive in chunks while the
capture is still being read (provisional rows: no flow number yet, ordered
by their first packet) and are replaced by the final analysis at the end.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from pcapip.flows.columns import COLUMNS, of_kind
from pcapip.report import filters

#: The ``analyze`` schema, in its column order.
SCHEMA: tuple[str, ...] = COLUMNS
# a provisional row has no flow number yet: it is missing like a port
_INT_NULLABLE = ("flow", *of_kind("port"))
_INT = tuple(c for c in of_kind("int", "time") if c not in _INT_NULLABLE)
_TEXT = tuple(c for c in SCHEMA if c not in _INT_NULLABLE and c not in _INT)
#: hidden columns: ``_frame`` first packet number (known for provisional rows), ``_order``
#: the natural order (flow number when final, first packet while loading)
HIDDEN = ("_frame", "_order")

GROUPINGS = ("flows", "egress", "client")


def empty_frame() -> pd.DataFrame:
    return normalize(pd.DataFrame({c: [] for c in SCHEMA}))


def normalize(df: pd.DataFrame, *, frames: Sequence[int | None] | None = None) -> pd.DataFrame:
    """One representation for provisional and final rows (object text, Int64 ports, ns times)."""
    out: dict[str, Any] = {}
    n = len(df)
    for c in SCHEMA:
        col = df[c] if c in df.columns else pd.Series([None] * n, dtype=object)
        if c in ("start", "end"):
            if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(
                col.dtype
            ):
                col = col.dt.tz_localize(None) if isinstance(col.dtype, pd.DatetimeTZDtype) else col
                out[c] = col.astype("datetime64[ns]").astype("int64").to_numpy()
            else:
                out[c] = pd.to_numeric(col).fillna(0).astype("int64").to_numpy()
        elif c in _INT_NULLABLE:
            out[c] = pd.array(pd.to_numeric(col.astype(object), errors="coerce"), dtype="Int64")
        elif c in _INT:
            out[c] = pd.to_numeric(col).fillna(0).astype("int64").to_numpy()
        else:
            obj = col.astype(object).to_numpy(dtype=object)
            miss = col.isna().to_numpy(dtype=bool)
            if miss.any():
                obj = obj.copy()
                obj[miss] = None
            # object, not pandas' string dtype: missing stays None and comparisons stay cheap
            out[c] = pd.Series(obj, dtype=object)
    res = pd.DataFrame(out)
    fr = frames if frames is not None else [None] * n
    res["_frame"] = pd.array(list(fr), dtype="Int64")
    flow = res["flow"]
    res["_order"] = np.where(flow.notna(), flow.fillna(0), res["_frame"].fillna(0)).astype("int64")
    return res


def _int_array(values: Sequence[int | None]) -> pd.arrays.IntegerArray:
    obj = np.array(values, dtype=object)
    miss = np.equal(obj, None)
    data = np.where(miss, 0, obj).astype(np.int64) if miss.any() else obj.astype(np.int64)
    return pd.arrays.IntegerArray(data, miss)


def frame_of(columns: dict[str, Sequence[Any]], frames: Sequence[int] | None = None) -> pd.DataFrame:
    """Rows given as one list per schema column (times in ns, missing values None) as a
    model frame: what :func:`normalize` makes, without going through pandas' conversions.
    Provisional rows have no ``flow`` column and give their first packets as ``frames``;
    final rows have flow numbers and no ``frames``."""
    n = len(frames) if frames is not None else len(columns["flow"])
    out: dict[str, Any] = {}
    for c in SCHEMA:
        if c == "flow" and c not in columns:
            out[c] = pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, dtype=bool))
        elif c in _INT_NULLABLE:
            out[c] = _int_array(columns[c])
        elif c in _INT:
            out[c] = np.asarray(columns[c], dtype=np.int64)
        else:
            out[c] = pd.Series(np.array(columns[c], dtype=object), dtype=object)
    res = pd.DataFrame(out)
    if frames is None:
        res["_frame"] = pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, dtype=bool))
        res["_order"] = np.asarray(columns["flow"], np.int64)
    else:
        known = np.zeros(n, dtype=bool)
        res["_frame"] = pd.arrays.IntegerArray(np.asarray(frames, np.int64), known)
        res["_order"] = np.asarray(frames, np.int64)
    return res


# ------------------------------------------------------------------------------ display text
def hostport(ip: Any, port: Any) -> str:
    if ip is None or (isinstance(ip, float) and ip != ip):
        return "-"
    ip = str(ip)
    host = f"[{ip}]" if ":" in ip else ip
    if port is None or port is pd.NA or (isinstance(port, float) and port != port):
        return host
    return f"{host}:{int(port)}"


def clock(ns: int) -> str:
    """Time of day (UTC) with microseconds: what a packet list shows."""
    sec, frac = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(sec, UTC).strftime("%H:%M:%S") + f".{frac // 1000:06d}"


def _ip_key(values: pd.Series) -> np.ndarray:
    """Numeric sort key of IP text (IPv4 before IPv6, missing last), parsed once per value."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    keys = []
    for u in uniques:
        try:
            a = ipaddress.ip_address(str(u))
            keys.append(float(int(a)) + (0.0 if a.version == 4 else 2.0**33))
        except ValueError:
            keys.append(2.0**130)
    table = np.array([*keys, 2.0**131], dtype="float64")
    return table[codes]


class FlowModel:
    """All flows (``df``), the current filter/sort (``view``), and the per-IP groupings."""

    def __init__(self) -> None:
        self.df: pd.DataFrame = empty_frame()
        self.final = False
        self.filter_text = ""
        self._pred = filters.parse("")
        self.sort_key: str | None = None
        self.sort_desc = False
        self.view: np.ndarray = np.zeros(0, dtype=np.int64)
        self._hay: pd.Series | None = None
        self._arrays: dict[str, np.ndarray] = {}
        self.version = 0  # bumps whenever the view changes (widgets compare it)
        self.replaced = 0  # bumps when rows are replaced (not merely appended)

    # -------------------------------------------------------------- rows in
    def append(self, chunk: pd.DataFrame) -> None:
        """Add provisional rows (already normalized); a row whose first packet is a row's
        already shown (a preview of the flow) takes that row's place. Chunks gathered
        together may hold a flow's preview and its ended row: the later one stays."""
        if chunk.empty:
            return
        framed = chunk["_frame"].notna()  # (live rows may have no frame number yet)
        chunk = chunk[~(framed & chunk["_frame"].duplicated(keep="last")).to_numpy()]
        if not self.df.empty:
            frames = chunk["_frame"].to_numpy(dtype="float64", na_value=np.nan)
            known = self.df["_frame"].to_numpy(dtype="float64", na_value=np.nan)
            again = np.isin(frames, known)
            if again.any():
                at = pd.Index(known).get_indexer(frames[again])
                self.df.iloc[at] = chunk[again].to_numpy(dtype=object)
                self._hay = None
                chunk = chunk[~again]
        # (the text search's haystack is built when a filter first needs it, for every row)
        hay = filters.haystack_for(chunk) if self._hay is not None else None
        if self.df.empty:
            self.df = chunk.reset_index(drop=True)
        else:
            self.df = pd.concat([self.df, chunk], ignore_index=True)
        if hay is not None and self._hay is not None:
            self._hay = pd.concat([self._hay, hay], ignore_index=True)
        self._changed()

    def replace(self, df: pd.DataFrame, *, final: bool) -> None:
        self.replaced += 1
        self.df = df.reset_index(drop=True)
        self._hay = None
        self.final = final
        self._changed()

    def _changed(self) -> None:
        self._arrays = {}
        self.version += 1
        self.refresh()

    # -------------------------------------------------------------- view
    def haystack(self) -> pd.Series:
        if self._hay is None or len(self._hay) != len(self.df):
            self._hay = filters.haystack_for(self.df)
        return self._hay

    def set_filter(self, text: str) -> None:
        """Compile and apply; raises FilterError (the view is unchanged then)."""
        pred = filters.parse(text)
        mask = self._mask(pred)
        self._pred = pred
        self.filter_text = text.strip()
        self._apply(mask)

    def set_sort(self, key: str | None, desc: bool = False) -> None:
        self.sort_key = key
        self.sort_desc = desc
        self.refresh()

    def _mask(self, pred: filters.Predicate) -> np.ndarray:
        if self.df.empty:
            return np.zeros(0, dtype=bool)
        return np.asarray(pred(self.df, filters.Context(self.haystack)), dtype=bool)

    def refresh(self) -> None:
        self._apply(self._mask(self._pred))

    def _apply(self, mask: np.ndarray) -> None:
        order = self._order()
        self.view = order[mask[order]] if len(order) else order
        self.version += 1

    def _order(self) -> np.ndarray:
        df = self.df
        n = len(df)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        natural = df["_order"].to_numpy(dtype=np.int64)
        if self.sort_key is None:
            primary = natural.astype("float64")
            secondary = None
        else:
            primary, secondary = self.sort_keys(self.sort_key)
            if self.sort_desc:
                primary = -primary
                if secondary is not None:
                    secondary = -secondary
        keys = [natural]  # last tie-breaker
        if secondary is not None:
            keys.append(secondary)
        keys.append(primary)
        return np.lexsort(keys).astype(np.int64)

    def sort_keys(self, key: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(primary, secondary) float keys for a display column (IP sorts numerically)."""
        df = self.df
        pairs = {
            "egress": ("egress_ip", "egress_port"),
            "origin": ("origin_ip", "origin_port"),
            "client": ("client_ip", "client_port"),
            "proxy": ("proxy_ip", "proxy_port"),
        }
        if key in pairs:
            ip, port = pairs[key]
            p = pd.to_numeric(df[port], errors="coerce").astype("float64").fillna(-1).to_numpy()
            return _ip_key(df[ip]), p
        if key in ("flow", "packets", "bytes", "start", "end", "_order"):
            col = df[key]
            return pd.to_numeric(col, errors="coerce").astype("float64").fillna(
                np.inf
            ).to_numpy(), None
        if key == "sev":
            return self.severity().astype("float64") * -1.0, None
        codes, uniques = pd.factorize(df[key].astype(object).fillna(""), sort=True)
        return codes.astype("float64"), None

    def severity(self) -> np.ndarray:
        """Worst finding level per row: -1 none, 0 info, 1 warning, 2 error."""
        if "sev" not in self._arrays:
            from pcapip.flows.findings import CATALOGUE

            def worst(v: object) -> int:
                if not v:
                    return -1
                levels = [int(CATALOGUE[c].level) for c in str(v).split(";") if c in CATALOGUE]
                return max(levels, default=0)

            codes, uniques = pd.factorize(self.df["findings"].astype(object), use_na_sentinel=True)
            table = np.array([*(worst(u) for u in uniques), -1], dtype=np.int8)
            self._arrays["sev"] = table[codes] if len(codes) else np.zeros(0, dtype=np.int8)
        return self._arrays["sev"]

    # -------------------------------------------------------------- reading rows
    def array(self, col: str) -> np.ndarray:
        """A column as a numpy object array (cached until the rows change)."""
        a = self._arrays.get(col)
        if a is None:
            s = self.df[col]
            a = s.astype(object).where(s.notna(), None).to_numpy(dtype=object)
            self._arrays[col] = a
        return a

    def __len__(self) -> int:
        return len(self.view)

    def position(self, view_row: int) -> int:
        return int(self.view[view_row])

    def record(self, pos: int) -> dict[str, Any]:
        """Row at frame position ``pos`` as a plain dict (None for missing values)."""
        return {c: self.array(c)[pos] for c in (*SCHEMA, "_frame")}

    def find(self, rec: dict[str, Any]) -> int | None:
        """View row of the flow matching ``rec``'s 5-tuple and start, if it is in the view."""
        if not len(self.view):
            return None
        df = self.df
        m = (
            (df["egress_ip"] == rec["egress_ip"]).to_numpy(dtype=bool)
            & (df["origin_ip"] == rec["origin_ip"]).to_numpy(dtype=bool)
            & (df["egress_port"] == rec["egress_port"]).fillna(False).to_numpy(dtype=bool)
            & (df["origin_port"] == rec["origin_port"]).fillna(False).to_numpy(dtype=bool)
            & (df["transport"] == rec["transport"]).to_numpy(dtype=bool)
        )
        cands = np.nonzero(m)[0]
        if not len(cands):
            return None
        starts = df["start"].to_numpy()[cands]
        best = int(cands[np.argmin(np.abs(starts - int(rec["start"])))])
        hits = np.nonzero(self.view == best)[0]
        return int(hits[0]) if len(hits) else None

    def find_flow(self, flow: int) -> int | None:
        if not len(self.view):
            return None
        flows = self.df["flow"].to_numpy(dtype="float64", na_value=np.nan)
        hits = np.nonzero(flows[self.view] == flow)[0]
        return int(hits[0]) if len(hits) else None

    # -------------------------------------------------------------- groups
    def groups(self, by: str) -> pd.DataFrame:
        """Per egress or client IP over the current view: flows, the other side, methods, trouble."""
        key = "egress_ip" if by == "egress" else "client_ip"
        other = "client_ip" if by == "egress" else "egress_ip"
        cols = ["key", "flows", "others", "methods", "ok", "problems", "findings"]
        sub = self.df.iloc[self.view]
        if sub.empty:
            return pd.DataFrame({c: [] for c in cols})
        sev = self.severity()[self.view]
        work = pd.DataFrame(
            {
                "key": sub[key].astype(object).where(sub[key].notna(), "(none)").to_numpy(),
                "other": sub[other].astype(object).to_numpy(),
                "method": sub["method"].astype(object).to_numpy(),
                "ok": (sub["status"] == "ok").to_numpy(dtype=bool),
                "problem": (sev >= 1),
                "findings": sub["findings"].astype(object).fillna("").to_numpy(),
            }
        )
        g = work.groupby("key", sort=False)

        def codes(s: pd.Series) -> str:
            seen: set[str] = set()
            for v in s:
                if v:
                    seen.update(v.split(";"))
            return ";".join(sorted(seen))

        out = pd.DataFrame(
            {
                "flows": g.size(),
                "others": g["other"].nunique(dropna=True),
                "methods": g["method"].agg(lambda s: ",".join(sorted({str(x) for x in s}))),
                "ok": g["ok"].sum(),
                "problems": g["problem"].sum(),
                "findings": g["findings"].agg(codes),
            }
        ).reset_index()
        out["_ip"] = _ip_key(out["key"].where(out["key"] != "(none)", None))
        out = out.sort_values(["flows", "_ip"], ascending=[False, True], kind="stable")
        return out[cols].reset_index(drop=True)

    # -------------------------------------------------------------- counters
    def counts(self) -> dict[str, Any]:
        """Counts by method, status and finding code over all rows (for the summary pane)."""
        df = self.df
        methods = df["method"].value_counts().to_dict() if len(df) else {}
        statuses = df["status"].value_counts().to_dict() if len(df) else {}
        codes: dict[str, int] = {}
        if len(df):
            vc = df["findings"].dropna().value_counts()
            for v, n in vc.items():
                for c in str(v).split(";"):
                    if c:
                        codes[c] = codes.get(c, 0) + int(n)
        return {
            "flows": len(df),
            "methods": {str(k): int(v) for k, v in methods.items()},
            "statuses": {str(k): int(v) for k, v in statuses.items()},
            "codes": codes,
        }
