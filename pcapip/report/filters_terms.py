"""What each term of the flow filter language means on a frame of the flow schema.

The field classes (from the columns' declared kinds), the matchers behind
``field OP value``, ``in``, ``finding:``, ``has:``, ``is:problem`` and free text, each a
predicate ``(frame, context) -> bool mask`` computed column-wise, once per distinct value.
The syntax that combines them is :mod:`pcapip.report.filters`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from pcapip.flows.columns import BY_NAME, SCHEMA, of_kind
from pcapip.flows.findings import CATALOGUE, ORDER, Level

# The field classes come from the columns' declared kinds (times are not filter fields).
IP_FIELDS = of_kind("ip")
PORT_FIELDS = of_kind("port")
INT_FIELDS = of_kind("int", "port")
# closed vocabularies first, as the help lists them
TEXT_FIELDS = tuple(
    sorted(of_kind("category", "text"), key=lambda c: BY_NAME[c].vocabulary is None)
)
(FINDINGS_FIELD,) = of_kind("codes")
FIELDS = (*IP_FIELDS, *INT_FIELDS, *TEXT_FIELDS, FINDINGS_FIELD)

#: Values that mean "no value" in a field whose real values never use them.
MISSING_WORDS = frozenset({"none", "null", "-", "missing"})

#: Columns whose text the free-text search looks at (the table's columns).
TEXT_SEARCH_COLUMNS = tuple(c.name for c in SCHEMA if c.kind not in ("int", "time"))


class FilterError(ValueError):
    """The filter text is not valid; the message says where and why."""


Predicate = Callable[[pd.DataFrame, "Context"], np.ndarray]


class Context:
    """Per-frame caches shared by the terms of one evaluation (free-text haystack)."""

    def __init__(self, haystack: Callable[[], pd.Series]) -> None:
        self._haystack = haystack

    def haystack(self) -> pd.Series:
        return self._haystack()


def haystack_for(df: pd.DataFrame) -> pd.Series:
    """Lower-case text of every searchable cell of each row, joined (for free-text search)."""
    if df.empty:
        return pd.Series([], dtype=object)
    parts = [df[c].astype(object).where(df[c].notna(), "").astype(str) for c in TEXT_SEARCH_COLUMNS]
    out = parts[0]
    for p in parts[1:]:
        out = out + "\x1f" + p
    return out.str.lower()


def _norm_code(text: str) -> str:
    return re.sub(r"[-_.]", ".", text.strip().lower())


def finding_term(code: str) -> Predicate:
    """``finding:CODE``: a flow with that code, or one under it (``toa`` matches ``toa.*``)."""
    want = _norm_code(code)

    def pred(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        return _per_unique(
            df[FINDINGS_FIELD],
            lambda v: (
                v is not None
                and any(
                    c == want or c.startswith(want + ".")
                    for c in (_norm_code(x) for x in str(v).split(";") if x)
                )
            ),
        )

    return pred


def codes_of(findings: object) -> list[str]:
    """The finding codes of one ``findings`` cell (';'-joined codes, or missing)."""
    if findings is None or (not isinstance(findings, str) and pd.isna(findings)):
        return []
    return [c for c in str(findings).split(";") if c]


def count_codes(findings: pd.Series) -> str:
    """``code=flows;...`` for a group's findings cells, most severe code first."""
    n: dict[str, int] = {}
    for cell, k in findings.astype(object).value_counts(dropna=True).items():
        for c in codes_of(cell):
            n[c] = n.get(c, 0) + int(k)
    order = sorted(n, key=lambda c: (-CATALOGUE[c].level, ORDER[c]) if c in CATALOGUE else (1, 0))
    return ";".join(f"{c}={n[c]}" for c in order)


def is_problem(findings: object) -> bool:
    """True when a ``findings`` cell holds a code of warning or error severity."""
    return any(
        c in CATALOGUE and CATALOGUE[c].level >= Level.WARNING for c in codes_of(findings)
    )


def problem_mask(df: pd.DataFrame) -> np.ndarray:
    """Rows of a flow frame whose flow has a warning or error finding."""
    return _per_unique(df[FINDINGS_FIELD], is_problem)


def worst_rank(df: pd.DataFrame) -> np.ndarray:
    """Per row, the most severe finding level (-1 without findings): sorts problems first."""
    if len(df) == 0:
        return np.zeros(0, dtype=np.int64)
    codes, uniques = pd.factorize(df[FINDINGS_FIELD].astype(object), use_na_sentinel=True)
    rank = [max((int(CATALOGUE[c].level) for c in codes_of(u) if c in CATALOGUE), default=-1)
            for u in uniques]
    return np.asarray([*rank, -1], dtype=np.int64)[codes]


def has_term(fields: tuple[str, ...]) -> Predicate:
    """``has:FIELD``: any of ``fields`` has a value (text fields: a non-empty one)."""
    def pred(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        out = np.zeros(len(df), dtype=bool)
        for f in fields:
            col = df[f]
            ok = col.notna().to_numpy(dtype=bool)
            if f in TEXT_FIELDS or f == FINDINGS_FIELD:
                ok = ok & (col.astype(object).fillna("").astype(str) != "").to_numpy(dtype=bool)
            out |= ok
        return out

    return pred


def text_term(word: str) -> Predicate:
    """Free text: ``word`` anywhere in the row as the table shows it, case-insensitively."""
    needle = word.lower()

    def pred(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        if df.empty:
            return np.zeros(0, dtype=bool)
        return ctx.haystack().str.contains(needle, regex=False).to_numpy(dtype=bool)

    return pred


def _per_unique(col: pd.Series, test: Callable[[object], bool]) -> np.ndarray:
    """Apply ``test`` once per distinct value (flows share few distinct values per column)."""
    if len(col) == 0:
        return np.zeros(0, dtype=bool)
    codes, uniques = pd.factorize(col.astype(object), use_na_sentinel=True)
    hits = np.array([bool(test(u)) for u in uniques] + [bool(test(None))], dtype=bool)
    return hits[codes]  # code -1 (missing) indexes the last entry


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        a = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        return a.ipv4_mapped
    return a


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        if "/" in text:
            return ipaddress.ip_network(text, strict=False)
        a = _ip(text)
        if a is None:
            raise ValueError
        return ipaddress.ip_network(a)
    except ValueError:
        raise FilterError(f"{text!r} is not an IP address or CIDR") from None


def _ip_matcher(value: str) -> Callable[[object], bool]:
    if value.lower() in MISSING_WORDS:
        return lambda v: v is None
    net = _network(value)

    def test(v: object) -> bool:
        if v is None:
            return False
        a = _ip(str(v))
        return a is not None and a.version == net.version and a in net

    return test


def _int_value(field: str, value: str) -> int | None:
    if value.lower() in MISSING_WORDS:
        return None
    try:
        return int(value, 0)
    except ValueError:
        raise FilterError(f"{field} compares with a number, not {value!r}") from None


def _text_matcher(field: str, value: str, df: pd.DataFrame) -> Callable[[object], bool]:
    want = value.lower()
    if want in MISSING_WORDS and not _literal_in(df[field], want):
        return lambda v: v is None or str(v) == ""
    if field == FINDINGS_FIELD:
        code = _norm_code(value)
        return lambda v: v is not None and code in {_norm_code(x) for x in str(v).split(";")}
    return lambda v: v is not None and str(v).lower() == want


def _literal_in(col: pd.Series, want: str) -> bool:
    vals = col.dropna().astype(str).str.lower()
    return bool((vals == want).any())


def compare_term(fields: tuple[str, ...], op: str, value: str) -> Predicate:
    """``field OP value``; a bad value raises FilterError now, not an empty result later."""
    # validate the value now, so a typo is reported while typing, not silently empty
    for f in fields:
        if f in IP_FIELDS and op in ("==", "=", "!=") and value.lower() not in MISSING_WORDS:
            _network(value)
        if f in INT_FIELDS and op != "~":
            _int_value(f, value)
        if f in IP_FIELDS and op in (">", ">=", "<", "<="):
            raise FilterError(f"{f} supports ==, !=, in and ~, not {op}")

    def one(df: pd.DataFrame, f: str) -> np.ndarray:
        col = df[f]
        if op == "~":
            needle = value.lower()
            return _per_unique(col, lambda v: v is not None and needle in str(v).lower())
        if f in IP_FIELDS:
            hit = _per_unique(col, _ip_matcher(value))
            return ~hit if op == "!=" else hit
        if f in INT_FIELDS:
            n = _int_value(f, value)
            if n is None:
                miss = col.isna().to_numpy(dtype=bool)
                return ~miss if op == "!=" else miss
            arr = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
            with np.errstate(invalid="ignore"):
                res = {
                    "==": arr == n,
                    "=": arr == n,
                    "!=": arr != n,
                    ">": arr > n,
                    ">=": arr >= n,
                    "<": arr < n,
                    "<=": arr <= n,
                }[op]
            return np.asarray(res, dtype=bool)
        if op in (">", ">=", "<", "<="):
            raise FilterError(f"{f} is text: use ==, != or ~ with it")
        hit = _per_unique(col, _text_matcher(f, value, df))
        return ~hit if op == "!=" else hit

    def pred(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        masks = [one(df, f) for f in fields]
        if op == "!=":  # "ip != X": none of the IP columns is X
            return np.logical_and.reduce(masks)
        return np.logical_or.reduce(masks)

    return pred


def member_term(fields: tuple[str, ...], value: str) -> Predicate:
    """``field in a,b,c`` (CIDRs for IP fields): equal to any of the items."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise FilterError("'in' needs a list of values (a,b,c) or CIDRs")
    for f in fields:
        for it in items:
            if f in IP_FIELDS and it.lower() not in MISSING_WORDS:
                _network(it)
            if f in INT_FIELDS:
                _int_value(f, it)

    def pred(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        out = np.zeros(len(df), dtype=bool)
        for f in fields:
            for it in items:
                out |= compare_term((f,), "==", it)(df, ctx)
        return out

    return pred
