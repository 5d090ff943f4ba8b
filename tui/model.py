"""The rows behind the flows table: all flows, the filtered and sorted view, the groupings.

The table widget draws only the lines on screen and asks this model for
them, so a capture with a million flows costs packed numpy columns
(:class:`~pcapip.tui.rows.Rows`) and a few index arrays, never a widget or
an object per row. Rows arrive in chunks while the capture is still being
read (provisional rows: no flow number yet, ordered by their first packet)
and are replaced by the final analysis at the end. Pandas is imported only
when the user asks for what is written on frames: a filter, the groupings.
"""

from __future__ import annotations

import ipaddress
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from pcapip.flows.packed import NO_IP, NULL
from pcapip.tui.rows import HIDDEN, IPS, SCHEMA, TEXTS, Rows, normalize

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GROUPINGS", "HIDDEN", "SCHEMA", "FlowModel", "Rows", "clock", "hostport", "normalize"]

GROUPINGS = ("flows", "egress", "client")


# ------------------------------------------------------------------------------ display text
def hostport(ip: Any, port: Any) -> str:
    if ip is None or (isinstance(ip, float) and ip != ip):
        return "-"
    ip = str(ip)
    host = f"[{ip}]" if ":" in ip else ip
    if port is None or type(port).__name__ == "NAType" or (isinstance(port, float) and port != port):
        return host
    return f"{host}:{int(port)}"


def clock(ns: int) -> str:
    """Time of day (UTC) with microseconds: what a packet list shows."""
    sec, frac = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(sec, UTC).strftime("%H:%M:%S") + f".{frac // 1000:06d}"


def _ip_exact(text: str) -> tuple[int, int]:
    """Exact sort key of address text: (0, IPv4), (1, IPv6) or (2, 0) for what is none."""
    try:
        a = ipaddress.ip_address(text)
    except ValueError:
        return 2, 0
    return (0 if a.version == 4 else 1), int(a)


def _ip_key(values: pd.Series) -> np.ndarray:
    """Numeric sort key of IP text (IPv4 before IPv6, missing last), parsed once per value."""
    import pandas as pd

    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    keys = [_ip_exact(str(u)) for u in uniques]
    rank = np.empty(len(keys) + 1)
    rank[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
    rank[-1] = len(keys)  # missing last (code -1)
    return rank[codes]


def _number_key(v: np.ndarray, missing: float) -> np.ndarray:
    out = v.astype("float64")
    out[v == NULL] = missing
    return out


class FlowModel:
    """All flows (``rows``), the current filter/sort (``view``), and the per-IP groupings."""

    def __init__(self) -> None:
        self.rows = Rows.empty()
        self.final = False
        self.filter_text = ""
        self._pred: Any = None  # None: no filter (every row)
        self.sort_key: str | None = None
        self.sort_desc = False
        self.view: np.ndarray = np.zeros(0, dtype=np.int64)
        self._df: pd.DataFrame | None = None
        self._hay: pd.Series | None = None
        self._arrays: dict[str, np.ndarray] = {}
        self.version = 0  # bumps whenever the view changes (widgets compare it)
        self.replaced = 0  # bumps when rows are replaced (not merely appended)

    @property
    def vocab(self) -> Any:
        return self.rows.vocab

    @property
    def total(self) -> int:
        """Rows held (shown or filtered out)."""
        return len(self.rows)

    @property
    def df(self) -> pd.DataFrame:
        """Every row as a pandas frame (built when first asked for after a change)."""
        if self._df is None:
            self._df = self.rows.frame()
        return self._df

    # -------------------------------------------------------------- rows in
    def append(self, chunk: Rows | pd.DataFrame) -> None:
        """Add provisional rows; a row whose first packet is a row's already shown (a
        preview of the flow) takes that row's place. Chunks gathered together may hold a
        flow's preview and its ended row: the later one stays."""
        if not isinstance(chunk, Rows):
            chunk = Rows.of_frame(chunk)  # (live rows come as a normalized frame)
        if not len(chunk):
            return
        chunk = chunk.recoded(self.vocab).last_per_frame()
        if self.total:
            mine = self.rows.cols
            known = mine["_frame"]
            frames = chunk.cols["_frame"]
            sorter = np.argsort(known, kind="stable")
            at = sorter[np.minimum(np.searchsorted(known, frames, sorter=sorter), len(known) - 1)]
            again = (frames != NULL) & (known[at] == frames)
            if again.any():
                for c, v in mine.items():
                    v[at[again]] = chunk.cols[c][again]
                chunk = chunk.take(~again)
            for c in mine:  # a column at a time: never two copies of every column at once
                mine[c] = np.concatenate([mine[c], chunk.cols[c]])
        else:
            self.rows = chunk
        self._changed()

    def replace(self, rows: Rows | pd.DataFrame, *, final: bool) -> None:
        if not isinstance(rows, Rows):
            rows = Rows.of_frame(rows)
        self.replaced += 1
        # the rows themselves, not a copy (the final rows are the flow table's columns):
        # later appends add texts to their vocabulary and write only rows they add
        self.rows = rows
        self.final = final
        self._changed()

    def _changed(self) -> None:
        self._arrays = {}
        self._df = None
        self._hay = None
        self.version += 1
        self.refresh()

    # -------------------------------------------------------------- view
    def haystack(self) -> pd.Series:
        if self._hay is None or len(self._hay) != self.total:
            from pcapip.report import filters

            self._hay = filters.haystack_for(self.df)
        return self._hay

    def set_filter(self, text: str) -> None:
        """Compile and apply; raises FilterError (the view is unchanged then)."""
        pred = None
        if text.strip():
            from pcapip.report import filters

            pred = filters.parse(text)
        mask = self._mask(pred)
        self._pred = pred
        self.filter_text = text.strip()
        self._apply(mask)

    def set_sort(self, key: str | None, desc: bool = False) -> None:
        self.sort_key = key
        self.sort_desc = desc
        self.refresh()

    def _mask(self, pred: Any) -> np.ndarray:
        if pred is None or not self.total:
            return np.ones(self.total, dtype=bool)
        from pcapip.report import filters

        return np.asarray(pred(self.df, filters.Context(self.haystack)), dtype=bool)

    def refresh(self) -> None:
        self._apply(self._mask(self._pred))

    def _apply(self, mask: np.ndarray) -> None:
        order = self._order()
        self.view = order[mask[order]] if len(order) else order
        self.version += 1

    def _order(self) -> np.ndarray:
        n = self.total
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        natural = self.rows.cols["_order"]
        if self.sort_key is None:
            return np.argsort(natural, kind="stable").astype(np.int64)
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
        c = self.rows.cols
        pairs = {
            "egress": ("egress_ip", "egress_port"),
            "origin": ("origin_ip", "origin_port"),
            "client": ("client_ip", "client_port"),
            "proxy": ("proxy_ip", "proxy_port"),
        }
        if key in pairs:
            ip, port = pairs[key]
            return self._ip_sort(ip), _number_key(c[port], -1.0)
        if key == "sev":
            return self.severity().astype("float64") * -1.0, None
        if key in TEXTS:
            inv, texts = self.rows.texts_of(key)
            order = sorted(range(len(texts)), key=lambda k: texts[k] or "")
            rank = np.empty(len(texts), dtype="float64")
            rank[order] = np.arange(len(texts))
            return rank[inv], None
        return _number_key(c[key], np.inf), None

    def _ip_sort(self, col: str) -> np.ndarray:
        v = self.rows.cols[col]
        out = v.astype("float64")  # IPv4: the address itself
        out[v == NO_IP] = 2.0**131
        other = v < NO_IP
        if other.any():  # IPv6 (and odd text): ranked after every IPv4 address, exactly
            uniq, inv = np.unique(v[other], return_inverse=True)
            texts = self.vocab.texts
            keys = [_ip_exact(texts[-2 - k]) for k in uniq.tolist()]
            rank = np.empty(len(keys))
            rank[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
            table = np.array([float(k[1]) if k[0] == 0 else 2.0**33 + r if k[0] == 1 else 2.0**130
                              for k, r in zip(keys, rank.tolist(), strict=True)])
            out[other] = table[inv.reshape(-1)]
        return out

    def severity(self) -> np.ndarray:
        """Worst finding level per row: -1 none, 0 info, 1 warning, 2 error."""
        if "sev" not in self._arrays:
            from pcapip.flows.findings import CATALOGUE

            def worst(v: object) -> int:
                if not v:
                    return -1
                levels = [int(CATALOGUE[c].level) for c in str(v).split(";") if c in CATALOGUE]
                return max(levels, default=0)

            inv, texts = self.rows.texts_of("findings")
            table = np.array([worst(t) for t in texts], dtype=np.int8)
            self._arrays["sev"] = table[inv] if len(inv) else np.zeros(0, dtype=np.int8)
        return self._arrays["sev"]

    # -------------------------------------------------------------- reading rows
    def value(self, col: str, pos: int) -> Any:
        """The row at position ``pos``'s value of ``col`` (None for missing)."""
        return self.rows.value(col, pos)

    def __len__(self) -> int:
        return len(self.view)

    def position(self, view_row: int) -> int:
        return int(self.view[view_row])

    def record(self, pos: int) -> dict[str, Any]:
        """Row at position ``pos`` as a plain dict (None for missing values)."""
        return {c: self.rows.value(c, pos) for c in (*SCHEMA, "_frame")}

    def _code(self, col: str, value: Any) -> int | None:
        """``value``'s code in column ``col`` (None: no row can hold it)."""
        if value is None:
            return NO_IP if col in IPS else -1 if col in TEXTS else NULL
        if col in IPS:
            try:
                packed = socket.inet_aton(str(value))
                if socket.inet_ntoa(packed) == str(value):
                    return int.from_bytes(packed, "big")
            except OSError:
                pass
            k = self.vocab.codes.get(str(value))
            return None if k is None else -2 - k
        if col in TEXTS:
            return self.vocab.codes.get(str(value))
        return int(value)

    def find(self, rec: dict[str, Any]) -> int | None:
        """View row of the flow matching ``rec``'s 5-tuple and start, if it is in the view."""
        if not len(self.view):
            return None
        c = self.rows.cols
        m = np.ones(self.total, dtype=bool)
        for col in ("egress_ip", "origin_ip", "egress_port", "origin_port", "transport"):
            code = self._code(col, rec[col])
            if code is None:
                return None
            m &= c[col] == code
        cands = np.nonzero(m)[0]
        if not len(cands):
            return None
        starts = c["start"][cands]
        best = int(cands[np.argmin(np.abs(starts - int(rec["start"])))])
        hits = np.nonzero(self.view == best)[0]
        return int(hits[0]) if len(hits) else None

    def find_flow(self, flow: int) -> int | None:
        if not len(self.view):
            return None
        hits = np.nonzero(self.rows.cols["flow"][self.view] == flow)[0]
        return int(hits[0]) if len(hits) else None

    def flows_shown(self) -> np.ndarray:
        """The flow numbers of the view's rows, in view order (0 for provisional rows)."""
        f = self.rows.cols["flow"][self.view]
        return np.where(f == NULL, 0, f)

    # -------------------------------------------------------------- groups
    def groups(self, by: str) -> pd.DataFrame:
        """Per egress or client IP over the current view: flows, the other side, methods, trouble."""
        import pandas as pd

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

        def tally(col: str) -> dict[str, int]:
            inv, texts = self.rows.texts_of(col)
            n = np.bincount(inv, minlength=len(texts)) if len(inv) else []
            return {str(t): int(k) for t, k in zip(texts, n, strict=False) if t is not None}

        codes: dict[str, int] = {}
        for v, n in tally("findings").items():
            for c in v.split(";"):
                if c:
                    codes[c] = codes.get(c, 0) + n
        return {
            "flows": self.total,
            "methods": tally("method"),
            "statuses": tally("status"),
            "codes": codes,
        }
