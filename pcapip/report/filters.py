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

This module is the syntax (tokens, the parser, field names and aliases); what each
term means on a frame is :mod:`pcapip.report.filters_terms`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pcapip.report.filters_terms import (
    FIELDS,
    FINDINGS_FIELD,
    INT_FIELDS,
    IP_FIELDS,
    PORT_FIELDS,
    TEXT_FIELDS,
    TEXT_SEARCH_COLUMNS,
    Context,
    FilterError,
    Predicate,
    codes_of,
    compare_term,
    finding_term,
    has_term,
    haystack_for,
    is_problem,
    member_term,
    problem_mask,
    text_term,
    worst_rank,
)

__all__ = [  # the language's public names; the terms' own live in filters_terms
    "ALIASES",
    "FIELDS",
    "FINDINGS_FIELD",
    "INT_FIELDS",
    "IP_FIELDS",
    "PORT_FIELDS",
    "PROBLEMS",
    "TEXT_FIELDS",
    "TEXT_SEARCH_COLUMNS",
    "Context",
    "FilterError",
    "Predicate",
    "Token",
    "codes_of",
    "evaluate",
    "haystack_for",
    "is_problem",
    "parse",
    "problem_mask",
    "tokenize",
    "worst_rank",
]

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
# levels of 'not' and '(' a filter may nest (a person writes a handful)
MAX_DEPTH = 100

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
        self.depth = 0
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

    @contextlib.contextmanager
    def _deeper(self, t: Token) -> Iterator[None]:
        """One more level of 'not' or '(': at most MAX_DEPTH, so a hostile filter is a
        clear error, not a RecursionError."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(
                f"the filter nests 'not' and '(' deeper than {MAX_DEPTH} levels "
                f"(at column {t.pos + 1})"
            )
        try:
            yield
        finally:
            self.depth -= 1

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
            with self._deeper(t):
                inner = self.parse_unary()
            return lambda df, ctx: ~inner(df, ctx)
        if t.kind == "op" and t.text == "(":
            self.take()
            with self._deeper(t):
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
                return finding_term(code)
            if low in (PROBLEMS, "is:problems"):
                return lambda df, ctx: problem_mask(df)
            if low.startswith("has:"):
                return has_term(_fields(t.text[4:], t.pos + 4))
            nxt = self.peek()
            if nxt is not None and nxt.kind == "op" and nxt.text in _COMPARE:
                fields = _fields(t.text, t.pos)
                op = self.take().text
                value = self._value(op)
                return compare_term(fields, op, value)
            if nxt is not None and self._is(nxt, "in") and _known_field(t.text):
                fields = _fields(t.text, t.pos)
                self.take()
                return member_term(fields, self._value("in"))
            if (
                nxt is not None
                and self._is(nxt, "not")
                and self._is(self.peek(1), "in")
                and _known_field(t.text)
            ):
                fields = _fields(t.text, t.pos)
                self.take()
                self.take()
                inner = member_term(fields, self._value("not in"))
                return lambda df, ctx: ~inner(df, ctx)
        return text_term(t.text)

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


