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
