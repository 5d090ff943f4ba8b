"""HAProxy logs: its default TCP and HTTP formats, or a custom ``log-format``.

A format is compiled like nginx's: literal text as written (``\\ `` for a space, ``%%``
for ``%``), each ``%var`` (with optional ``%{+Q}`` flags) a field named as HAProxy's
documentation names it (``ci``, ``cp``, ``t``, ``ft``, ``b``, ``s``, ``r``…), a sample
fetch ``%[expr]`` a field named by its expression. A syslog header before the record
(``<134>Feb  6 12:14:14 host haproxy[1]: ``) is skipped.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pcapip.errors import UsageError
from pcapip.resolve.rx import DIGIT, NOT_SPACE, SPACE_CHARS, compile_line, escape, group

if TYPE_CHECKING:
    import pyarrow as pa

#: HAProxy's ``option tcplog`` format
TCP_FORMAT = "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq"
#: HAProxy's ``option httplog`` format (HAProxy 2.0 and later)
HTTP_FORMAT = (
    "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc "
    "%ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r"
)
DEFAULT_FORMATS = {"tcp": TCP_FORMAT, "http": HTTP_FORMAT}

_D, _S = DIGIT, NOT_SPACE
_INT = f"[+-]?{_D}+|-"
_CLOCK = f"{_D}{_D}/[A-Z][a-z]{{2}}/{_D}{{4}}:{_D}{_D}:{_D}{_D}:{_D}{_D}"
_DATE_MS = rf"{_CLOCK}\.{_D}{{3}}"
_DATE_TZ = f"{_CLOCK} [+-]{_D}{{4}}"
_NAME = f"[^/{SPACE_CHARS}]+"
PATTERNS: dict[str, str] = {
    **dict.fromkeys(("ci", "fi", "bi", "si"), f"{_S}+"),
    **dict.fromkeys(("hr", "hs", "hrl", "hsl"), r"(?:\{[^}\n]*\})?"),
    **dict.fromkeys(("cp", "fp", "bp", "sp"), f"{_D}+|-"),
    **dict.fromkeys(("t", "tr", "trg", "trl"), _DATE_MS),
    **dict.fromkeys(("T", "Tl"), _DATE_TZ),
    **dict.fromkeys(
        ("Ts", "ms", "B", "U", "ac", "fc", "bc", "sc", "rc", "sq", "bq", "ST", "pid", "Tw",
         "Tc", "Tt", "TR", "Tr", "Ta", "Tq", "Th", "Ti", "Td", "Tu", "lc", "rt", "bl"),
        _INT,
    ),
    "ts": f"{_S}{{2}}",
    "tsc": f"{_S}{{4}}",
    "ft": f"{_S}+",
    "f": f"{_S}+",
    "b": _NAME,
    "s": _NAME,
    "CC": f"{_S}+",
    "CS": f"{_S}+",
}
#: fields HAProxy leaves out, with their space, when nothing is captured
OPTIONAL = ("hr", "hs", "hrl", "hsl")
#: fields that name the time, the most precise first: ``%t`` is the accept date, the
#: connection's start as the proxy saw it
TIME_FIELDS = ("t", "tr", "Ts", "T", "Tl")
_SYSLOG = (
    f"(?:<{_D}+>)?(?:{_D} +{_S}+ +{_S}+ +{_S}+ +{_S}+ +{_S}+ +(?:\\[.*?\\]|-) +"  # RFC 5424
    f"|[A-Z][a-z]{{2}} [ 0-9]{_D} {_D}{_D}:{_D}{_D}:{_D}{_D} {_S}+ {_S}+?(?:\\[{_D}+\\])?: )?"  # RFC 3164
)
_TOKEN = re.compile(r"%(?:\{([^}]*)\})?(?:\[([^\]]*)\]|(\w+))|%%|\\(.)")


def format_text(written: str) -> str:
    """A ``log-format`` line as the configuration writes it, surrounding quotes removed."""
    text = written.strip()
    text = re.sub(r"^log-format\s+", "", text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text


def compile_format(written: str, first: int = 0) -> tuple[re.Pattern[str], list[str]]:
    """The pattern matching a whole line of HAProxy's log format ``written`` (``tcp``,
    ``http`` or a ``log-format``) and its field names in order (field ``i`` is the group
    named ``f<first + i>``)."""
    fmt = format_text(DEFAULT_FORMATS.get(written.strip(), written))
    names: list[str] = []
    out, pos, optional = ["^", _SYSLOG], 0, False
    for m in _TOKEN.finditer(fmt):
        out.append(_literal(fmt[pos:m.start()], optional))
        pos = m.end()
        optional = False
        if m.group(0) == "%%":
            out.append(escape("%"))
            continue
        if m.group(4) is not None:  # a backslash escape
            out.append(escape(m.group(4)))
            continue
        flags, fetch, var = m.group(1) or "", m.group(2), m.group(3)
        name = f"[{fetch}]" if fetch is not None else var
        pattern = r".*?" if fetch is not None else PATTERNS.get(var, r".*?")
        if "+Q" in flags:
            pattern = r'"[^"\n]*"|-'
        optional = var in OPTIONAL
        if name in names:
            out.append(f"(?:{pattern})")
        else:
            out.append(group(first + len(names), pattern))
            names.append(name)
    out.append(_literal(fmt[pos:], optional) + r"[ \t]*$")
    if not names:
        raise UsageError(f"--haproxy-format {written!r}: no %variable in it")
    return compile_line("".join(out)), names


def _literal(text: str, after_optional: bool = False) -> str:
    """Literal format text, a run of spaces matching one or more; after a field HAProxy
    may leave out (``%hr`` without captures, and its space with it), zero or more."""
    if not text:
        return ""
    out = r" +".join(escape(part) for part in re.split(r" +", text))
    if after_optional and out.startswith(r" +"):
        out = r" *" + out[2:]
    return out


def unquote(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """``"GET / HTTP/1.1"`` -> ``GET / HTTP/1.1`` for the ``+Q`` fields."""
    import pyarrow.compute as pc

    quoted = pc.and_(pc.and_(pc.starts_with(values, '"'), pc.ends_with(values, '"')),
                     pc.greater_equal(pc.binary_length(values), 2))
    return pc.if_else(quoted, pc.utf8_slice_codeunits(values, 1, -1), values)
