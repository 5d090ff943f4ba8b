"""The pieces log-format patterns are built from, spelled so that RE2 (which reads the
logs, through ``pyarrow.compute.extract_regex``) and Python's ``re`` (which the tests
hold it to) read them alike: explicit ASCII classes instead of ``\\d`` ``\\s`` ``\\S``
``\\w`` (Unicode-wide in ``re``, ASCII in RE2), ``\\xhh`` for control characters, and
every field a group named ``f<number>`` (RE2 through pyarrow takes only named groups)."""

from __future__ import annotations

import re

#: an ASCII digit
DIGIT = "[0-9]"
#: the whitespace a log separates fields with (``\\s`` of ASCII)
SPACE_CHARS = r" \t\n\r\x0b\x0c"
#: one character that is no such whitespace (``\\S`` of ASCII; any other character,
#: non-ASCII included, counts as text)
NOT_SPACE = f"[^{SPACE_CHARS}]"
_META = frozenset(".^$|?*+()[]{}\\")


def escape(text: str) -> str:
    """Literal ``text`` as a pattern both engines read alike: the metacharacters escaped
    with a backslash, space and control characters as ``\\xhh``, the rest as written."""
    out = []
    for ch in text:
        if ch in _META:
            out.append("\\" + ch)
        elif ord(ch) < 0x21 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def group(number: int, pattern: str, prefix: str = "f") -> str:
    """Field ``number``'s capturing group."""
    return f"(?P<{prefix}{number}>{pattern})"


def compile_line(pattern: str) -> re.Pattern[str]:
    """A whole-line pattern as Python's ``re`` compiles it (the same text RE2 is given)."""
    return re.compile(pattern)


_FIELD = re.compile(r"\(\?P<f\d+>")


def top_level_fields(pattern: str) -> list[int]:
    """Where each field's group opens at the top level of ``pattern`` (inside no other
    group: a place where the pattern is a concatenation of what comes before and after);
    none when the pattern is a choice at its top level."""
    out, depth, i, in_class = [], 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            i += 1 if pattern[i + 1:i + 2] == "^" else 0
            i += 1 if pattern[i + 1:i + 2] == "]" else 0  # a "]" first in a class is itself
        elif c == "(":
            if depth == 0 and _FIELD.match(pattern, i):
                out.append(i)
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            return []  # a choice of whole patterns: no place cuts them all
        i += 1
    return out


def passes(pattern: str, width: int = 3) -> list[str]:
    """A whole-line ``pattern`` (``^…$``, anchors its only assertions) cut before every
    ``width``-th top-level field: each pass matches its part and keeps what follows in a
    group ``rest`` (the rest of the pattern inside it, its fields not captured), which the
    next pass reads. Leftmost-first matching of A·B takes A's path first, then B's for what
    remains, so the passes give the fields one pass gives; and RE2 runs a pattern of at
    most four groups with its one-pass engine, a third faster over a line than its
    backtracker does with nine (``tests/test_resolve_rx.py`` holds them to Python's re)."""
    cuts = top_level_fields(pattern)[width::width]
    if not cuts or not pattern.endswith("$"):
        return [pattern]
    bounds = [0, *cuts, len(pattern)]
    out = []
    for j in range(len(bounds) - 1):
        part = ("^" if j else "") + pattern[bounds[j]:bounds[j + 1]]
        if bounds[j + 1] < len(pattern):
            part += f"(?P<rest>{_FIELD.sub('(?:', pattern[bounds[j + 1]:-1])})$"
        out.append(part)
    return out
