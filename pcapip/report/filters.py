"""The flow filter language, evaluated column-wise on a pandas frame of the flow schema.

One implementation for the TUI's filter bar, ``pcapip analyze --filter`` and
``Analysis.filter``.

Operators type what they would type in Wireshark or in a shell, so the
language accepts both ``==`` and ``=``, ``and``/``&&``, ``or``/``||``,
``not``/``!``, parentheses, and terms written next to each other mean "and".
A term is one of:

* ``field OP value`` with OP ``==`` ``=`` ``!=`` ``>`` ``>=`` ``<`` ``<=``
  ``~`` (contains) or ``in`` (comma-separated list; CIDRs for IP fields):
  ``method==ppv2``, ``egress_ip=198.51.100.1``, ``client_ip in 203.0.113.0/24``,
  ``origin_port>=8000``, ``tlvs~unique_id``;
* ``finding:CODE`` (``finding:origin-rejected``; ``-``/``_``/``.`` are the
  same, and a prefix such as ``finding:toa`` matches every TOA finding);
* ``has:FIELD`` (the field has a value: ``has:client_ip``);
* ``is:problem``: a flow with a warning or error finding (``pcapip analyze --problems``);
* any other word or quoted string: free text, matched case-insensitively
  against the row as shown in the table.

Every term evaluates to a boolean mask over the whole frame in one vectorised
step (IP parsing is done once per distinct value), so filtering a million
flows takes a fraction of a second rather than a Python loop per row.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pcapip.flows.columns import BY_NAME, SCHEMA, of_kind
from pcapip.flows.findings import CATALOGUE, Level

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

#: Short names people type; "ip" and "port" mean "any IP / any port column".
ALIASES: dict[str, tuple[str, ...]] = {
    "client": ("client_ip",),
    "egress": ("egress_ip",),
    "origin": ("origin_ip",),
    "proxy": ("proxy_ip",),
    "ip": IP_FIELDS,
    "ip.addr": IP_FIELDS,
    "addr": IP_FIELDS,
    "port": PORT_FIELDS,
    "proto": ("transport",),
    "finding": (FINDINGS_FIELD,),
    "code": (FINDINGS_FIELD,),
    "tlv": ("tlvs",),
    "command": ("pp_command",),
    "family": ("pp_family",),
}

#: The term for flows with a warning or error finding (``--problems``).
PROBLEMS = "is:problem"

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


# ---------------------------------------------------------------------------------- tokens
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|>=|<=|&&|\|\||[=<>~!()])
      | (?P<word>[^\s"'=!<>~()&|]+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # "str" | "op" | "word"
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FilterError(f"unexpected {text[pos:].strip()[:1]!r} at column {pos + 1}")
        kind = m.lastgroup or "word"
        value = m.group(kind)
        start = m.start(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append(Token(kind, value, start))
        pos = m.end()
    return out


# ---------------------------------------------------------------------------------- parser
_COMPARE = ("==", "=", "!=", ">", ">=", "<", "<=", "~")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def _is(self, t: Token | None, *words: str) -> bool:
        if t is None:
            return False
        if t.kind == "op":
            return t.text in words
        return t.kind == "word" and t.text.lower() in words

    def parse(self) -> Predicate:
        if not self.toks:
            return lambda df, ctx: np.ones(len(df), dtype=bool)
        p = self.parse_or()
        if self.peek() is not None:
            t = self.peek()
            raise FilterError(f"unexpected {t.text!r} at column {t.pos + 1}")
        return p

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self._is(self.peek(), "or", "||"):
            self.take()
            parts.append(self.parse_and())
        if len(parts) == 1:
            return parts[0]
        return lambda df, ctx: np.logical_or.reduce([p(df, ctx) for p in parts])

    def parse_and(self) -> Predicate:
        parts = [self.parse_unary()]
        while True:
            t = self.peek()
            if t is None or self._is(t, "or", "||", ")"):
                break
            if self._is(t, "and", "&&"):
                self.take()
            parts.append(self.parse_unary())
        if len(parts) == 1:
            return parts[0]
        return lambda df, ctx: np.logical_and.reduce([p(df, ctx) for p in parts])

    def parse_unary(self) -> Predicate:
        t = self.peek()
        if t is None:
            raise FilterError("the filter ends where a term was expected")
        if self._is(t, "not", "!"):
            self.take()
            inner = self.parse_unary()
            return lambda df, ctx: ~inner(df, ctx)
        if t.kind == "op" and t.text == "(":
            self.take()
            inner = self.parse_or()
            close = self.peek()
            if close is None or not (close.kind == "op" and close.text == ")"):
                raise FilterError(f"missing ')' for the '(' at column {t.pos + 1}")
            self.take()
            return inner
        if t.kind == "op":
            raise FilterError(f"unexpected {t.text!r} at column {t.pos + 1}")
        return self.parse_term()

    def parse_term(self) -> Predicate:
        start = self.toks[self.i]
        try:
            return self._term()
        except FilterError as exc:
            if "column" in str(exc):
                raise
            raise FilterError(f"{exc} (in the term at column {start.pos + 1})") from None

    def _term(self) -> Predicate:
        t = self.take()
        if t.kind == "word":
            low = t.text.lower()
            if ":" in low and low.split(":", 1)[0] in ("finding", "findings", "code"):
                code = t.text.split(":", 1)[1]
                if not code:
                    raise FilterError(f"finding: needs a code (column {t.pos + 1})")
                return _finding(code)
            if low in (PROBLEMS, "is:problems"):
                return lambda df, ctx: problem_mask(df)
            if low.startswith("has:"):
                return _has(_fields(t.text[4:], t.pos + 4))
            nxt = self.peek()
            if nxt is not None and nxt.kind == "op" and nxt.text in _COMPARE:
                fields = _fields(t.text, t.pos)
                op = self.take().text
                value = self._value(op)
                return _compare(fields, op, value)
            if nxt is not None and self._is(nxt, "in") and _known_field(t.text):
                fields = _fields(t.text, t.pos)
                self.take()
                return _member(fields, self._value("in"))
            if (
                nxt is not None
                and self._is(nxt, "not")
                and self._is(self.peek(1), "in")
                and _known_field(t.text)
            ):
                fields = _fields(t.text, t.pos)
                self.take()
                self.take()
                inner = _member(fields, self._value("not in"))
                return lambda df, ctx: ~inner(df, ctx)
        return _text(t.text)

    def _value(self, op: str) -> str:
        v = self.peek()
        if v is None or v.kind == "op":
            raise FilterError(f"{op!r} needs a value after it")
        self.take()
        text = v.text
        # "a, b" written with spaces after the commas
        while op in ("in", "not in") and text.endswith(","):
            nxt = self.peek()
            if nxt is None or nxt.kind == "op":
                break
            text += self.take().text
        return text


def _known_field(name: str) -> bool:
    n = name.lower()
    return n in FIELDS or n in ALIASES


def _fields(name: str, pos: int) -> tuple[str, ...]:
    n = name.lower()
    if n in FIELDS:
        return (n,)
    if n in ALIASES:
        return ALIASES[n]
    raise FilterError(
        f"unknown field {name!r} at column {pos + 1} (fields: {', '.join(FIELDS)}; "
        f"or finding:CODE, has:FIELD, free text)"
    )


def parse(text: str) -> Predicate:
    """Compile filter text into a predicate ``(frame, context) -> bool mask``."""
    return _Parser(text).parse()


def evaluate(text: str, df: pd.DataFrame, haystack: pd.Series | None = None) -> np.ndarray:
    """Boolean mask of the rows of ``df`` matching ``text`` (convenience for one-off use)."""
    pred = parse(text)
    cache: dict[str, pd.Series] = {}

    def hay() -> pd.Series:
        if haystack is not None:
            return haystack
        if "h" not in cache:
            cache["h"] = haystack_for(df)
        return cache["h"]

    return np.asarray(pred(df, Context(hay)), dtype=bool)


# ---------------------------------------------------------------------------------- terms
def _norm_code(text: str) -> str:
    return re.sub(r"[-_.]", ".", text.strip().lower())


def _finding(code: str) -> Predicate:
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


def _has(fields: tuple[str, ...]) -> Predicate:
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


def _text(word: str) -> Predicate:
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


def _compare(fields: tuple[str, ...], op: str, value: str) -> Predicate:
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


def _member(fields: tuple[str, ...], value: str) -> Predicate:
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
                out |= _compare((f,), "==", it)(df, ctx)
        return out

    return pred
