"""Flow rows as packed numpy columns: what the flows table holds, loading or loaded.

The flow stage already keeps its rows as numpy columns (:mod:`pcapip.flows.packed`:
integers with NULL for missing, IPv4 addresses as integers, text as codes of a
:class:`~pcapip.flows.packed.Vocab`); the TUI keeps them the same way and turns only
the cells on screen into text, so 100k flows cost a few MB and no import of pandas.
A pandas frame (:meth:`Rows.frame`) is built only for what is written on frames: a
filter, the groupings, the tests' comparisons.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pcapip.flows.columns import COLUMNS, of_kind
from pcapip.flows.packed import NO_IP, NULL, Vocab

if TYPE_CHECKING:
    import pandas as pd

    from pcapip.flows.packed import PackedRows
    from pcapip.flows.table import FlowTable

#: The ``analyze`` schema, in its column order.
SCHEMA: tuple[str, ...] = COLUMNS
#: address columns (address codes of the vocabulary)
IPS = frozenset(of_kind("ip"))
#: text columns (vocabulary codes, -1 for missing); every other column is an integer
#: (ports, counts, times in ns; NULL for missing)
TEXTS = frozenset(of_kind("category", "text", "codes"))
# a provisional row has no flow number yet: it is missing like a port
INT_NULLABLE = ("flow", *of_kind("port"))
#: ``_frame`` the first packet's number (provisional rows; NULL for final rows), ``_order``
#: the natural order (flow number when final, first packet while loading)
HIDDEN = ("_frame", "_order")
# the provisional row fields stored under another name in the packed rows
_ROW_NAME = {"start": "start_ns", "end": "end_ns"}


@dataclass
class Rows:
    """Rows as one array per SCHEMA column plus HIDDEN, text and addresses coded in ``vocab``."""

    cols: dict[str, np.ndarray]
    vocab: Vocab

    def __len__(self) -> int:
        return len(self.cols["_order"])

    @classmethod
    def empty(cls, vocab: Vocab | None = None) -> Rows:
        cols = {c: np.zeros(0, np.int64) for c in (*SCHEMA, *HIDDEN)}
        return cls(cols, vocab if vocab is not None else Vocab())

    @classmethod
    def of_table(cls, table: FlowTable) -> Rows:
        """The final rows of a flow table, as the table stores them."""
        n = len(table)
        cols = {c: table.raw(c, 0, n)[1] for c in SCHEMA}
        cols["_frame"] = np.full(n, NULL, np.int64)
        cols["_order"] = cols["flow"].copy()  # (its own array: rows are written per column)
        return cls(cols, table.vocab)

    @classmethod
    def of_packed(cls, packed: PackedRows, vocab: Vocab) -> Rows:
        """Provisional rows (packed rows of flows ended or settled, coded in ``vocab``):
        no flow number yet, their own findings only. Adds the findings' texts to
        ``vocab`` (call it where the tracker that owns ``vocab`` runs)."""
        from pcapip.flows.findings import join_codes

        pc = packed.cols
        n = len(packed)
        cols: dict[str, np.ndarray] = {}
        for c in SCHEMA:
            if c == "flow":
                cols[c] = np.full(n, NULL, np.int64)
            elif c == "rule":  # judged (--rules) when the table is built
                cols[c] = np.full(n, vocab.code(""), np.int64)
            elif c != "findings":
                cols[c] = np.asarray(pc[_ROW_NAME.get(c, c)])
        per_row: dict[int, list[str]] = {}
        texts = vocab.texts
        for row, code in zip(pc["f_row"].tolist(), pc["f_code"].tolist(), strict=True):
            have = per_row.setdefault(row, [])
            if texts[code] not in have:
                have.append(texts[code])
        findings = np.full(n, vocab.code(""), np.int64)
        for row, have in per_row.items():
            findings[row] = vocab.code(join_codes(have))
        cols["findings"] = findings
        cols["_frame"] = np.asarray(pc["first_frame"])
        cols["_order"] = cols["_frame"].copy()
        return cls(cols, vocab)

    @classmethod
    def of_frame(cls, df: pd.DataFrame) -> Rows:
        """Rows of a normalized model frame (:func:`normalize`)."""
        vocab = Vocab()
        cols: dict[str, np.ndarray] = {}
        for c in SCHEMA:
            col = df[c]
            if c in IPS or c in TEXTS:
                vals = col.astype(object).where(col.notna(), None).tolist()
                codes = vocab.ip_encode(vals) if c in IPS else vocab.encode(vals)
                cols[c] = codes.astype(np.int64)
            else:
                cols[c] = col.to_numpy(dtype="int64", na_value=NULL)
        for c in HIDDEN:
            cols[c] = df[c].to_numpy(dtype="int64", na_value=NULL)
        return cls(cols, vocab)

    @classmethod
    def concat(cls, parts: Sequence[Rows]) -> Rows:
        """One block of ``parts`` (coded in the first part's vocabulary when they differ)."""
        if len(parts) == 1:
            return parts[0]
        vocab = parts[0].vocab
        if any(p.vocab is not vocab for p in parts):
            vocab = Vocab()
            parts = [p.recoded(vocab) for p in parts]
        return cls({c: np.concatenate([p.cols[c] for p in parts]) for c in parts[0].cols}, vocab)

    # ------------------------------------------------------------------ changing
    def recoded(self, vocab: Vocab) -> Rows:
        """The same rows coded in ``vocab`` (its texts are added to as needed); the
        arrays are new, never the caller's."""
        if vocab is self.vocab:
            return self.take(slice(None))
        out: dict[str, np.ndarray] = {}
        src = self.vocab.texts
        for c, v in self.cols.items():
            if c in IPS:  # IPv4 codes are the address itself: only the others need recoding
                out[c] = _recode(v, v < NO_IP, lambda k: -2 - vocab.code(src[-2 - k]))
            elif c in TEXTS:
                out[c] = _recode(v, v >= 0, lambda k: vocab.code(src[k]))
            else:
                out[c] = np.array(v, np.int64)
        return Rows(out, vocab)

    def take(self, which: Any) -> Rows:
        """The rows ``which`` picks (a mask, indices or a slice), as new arrays."""
        return Rows({c: np.array(v[which], np.int64) for c, v in self.cols.items()}, self.vocab)

    def last_per_frame(self) -> Rows:
        """One row per first frame (the last one: an ended row after its preview); rows
        without a frame number (live rows) all stay."""
        f = self.cols["_frame"]
        framed = f != NULL
        if not framed.any():
            return self
        rev = f[::-1]
        _, first_in_rev = np.unique(rev, return_index=True)
        keep = np.zeros(len(f), bool)
        keep[len(f) - 1 - first_in_rev] = True
        keep |= ~framed
        return self if keep.all() else self.take(keep)

    # ------------------------------------------------------------------ reading
    def value(self, col: str, i: int) -> Any:
        """One cell as a Python value (None for missing)."""
        v = int(self.cols[col][i])
        if col in IPS:
            if v >= 0:
                return socket.inet_ntoa(v.to_bytes(4, "big"))
            return None if v == NO_IP else self.vocab.texts[-2 - v]
        if col in TEXTS:
            return None if v < 0 else self.vocab.texts[v]
        return None if v == NULL else v

    def column(self, col: str) -> list[Any]:
        """A whole column as Python values (None for missing)."""
        v = self.cols[col]
        if col in IPS:
            return self.vocab.ip_decode(v)
        if col in TEXTS:
            return self.vocab.decode(v)
        out = v.tolist()
        return [None if x == NULL else x for x in out] if (v == NULL).any() else out

    def texts_of(self, col: str) -> tuple[np.ndarray, list[Any]]:
        """(per-row index into the distinct values, those values decoded): each distinct
        text or address turned into text once."""
        v = self.cols[col]
        if col in TEXTS and len(v):
            # vocabulary codes are small: a count per code instead of a sort
            seen = np.bincount(v + 1, minlength=len(self.vocab.texts) + 1) > 0
            lut = np.cumsum(seen) - 1
            uniq = np.flatnonzero(seen) - 1
            return lut[v + 1], Rows({col: uniq}, self.vocab).column(col)
        uniq, inv = np.unique(v, return_inverse=True)
        return inv.reshape(-1), Rows({col: uniq}, self.vocab).column(col)

    def frame(self) -> pd.DataFrame:
        """The rows as the model's pandas frame (object text with None, Int64 flow and
        ports, int64 times in ns and counts, the HIDDEN columns): what filters read."""
        import pandas as pd

        out: dict[str, Any] = {}
        for c in SCHEMA:
            v = self.cols[c]
            if c in IPS or c in TEXTS:
                out[c] = pd.Series(np.array(self.column(c), dtype=object), dtype=object)
            elif c in INT_NULLABLE:
                out[c] = pd.arrays.IntegerArray(np.where(v == NULL, 0, v), v == NULL)
            else:
                out[c] = np.where(v == NULL, 0, v)
        res = pd.DataFrame(out)
        f = self.cols["_frame"]
        res["_frame"] = pd.arrays.IntegerArray(np.where(f == NULL, 0, f), f == NULL)
        res["_order"] = np.array(self.cols["_order"], np.int64)
        return res


def _recode(v: np.ndarray, mask: np.ndarray, new: Any) -> np.ndarray:
    """``v`` as int64 with the values under ``mask`` mapped by ``new`` (once per value)."""
    out = np.array(v, np.int64)
    if mask.any():
        uniq, inv = np.unique(out[mask], return_inverse=True)
        out[mask] = np.array([new(k) for k in uniq.tolist()], np.int64)[inv.reshape(-1)]
    return out


def normalize(df: pd.DataFrame, *, frames: Sequence[int | None] | None = None) -> pd.DataFrame:
    """One representation for provisional and final rows (object text, Int64 ports, ns times)."""
    import pandas as pd

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
        elif c in INT_NULLABLE:
            out[c] = pd.array(pd.to_numeric(col.astype(object), errors="coerce"), dtype="Int64")
        elif c not in IPS and c not in TEXTS:
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
