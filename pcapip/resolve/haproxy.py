"""HAProxy logs: its default TCP and HTTP formats, or a custom ``log-format``.

A format is compiled like nginx's: literal text as written (``\\ `` for a space, ``%%``
for ``%``), each ``%var`` (with optional ``%{+Q}`` flags) a field named as HAProxy's
documentation names it (``ci``, ``cp``, ``t``, ``ft``, ``b``, ``s``, ``r``…), a sample
fetch ``%[expr]`` a field named by its expression. A syslog header before the record
(``<134>Feb  6 12:14:14 host haproxy[1]: ``) is skipped.
"""

from __future__ import annotations

import re

from pcapip.errors import UsageError

#: HAProxy's ``option tcplog`` format
TCP_FORMAT = "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq"
#: HAProxy's ``option httplog`` format (HAProxy 2.0 and later)
HTTP_FORMAT = (
    "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc "
    "%ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r"
)
DEFAULT_FORMATS = {"tcp": TCP_FORMAT, "http": HTTP_FORMAT}

_INT = r"[+-]?\d+|-"
_DATE_MS = r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d\.\d{3}"
_DATE_TZ = r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}"
PATTERNS: dict[str, str] = {
    **dict.fromkeys(("ci", "fi", "bi", "si"), r"\S+"),
    **dict.fromkeys(("hr", "hs", "hrl", "hsl"), r"(?:\{[^}\n]*\})?"),
    **dict.fromkeys(("cp", "fp", "bp", "sp"), r"\d+|-"),
    **dict.fromkeys(("t", "tr", "trg", "trl"), _DATE_MS),
    **dict.fromkeys(("T", "Tl"), _DATE_TZ),
    **dict.fromkeys(
        ("Ts", "ms", "B", "U", "ac", "fc", "bc", "sc", "rc", "sq", "bq", "ST", "pid", "Tw",
         "Tc", "Tt", "TR", "Tr", "Ta", "Tq", "Th", "Ti", "Td", "Tu", "lc", "rt", "bl"),
        _INT,
    ),
    "ts": r"\S{2}",
    "tsc": r"\S{4}",
    "ft": r"\S+",
    "f": r"\S+",
    "b": r"[^/\s]+",
    "s": r"[^/\s]+",
    "CC": r"\S+",
    "CS": r"\S+",
}
#: fields HAProxy leaves out, with their space, when nothing is captured
OPTIONAL = ("hr", "hs", "hrl", "hsl")
#: fields that name the time, the most precise first: ``%t`` is the accept date, the
#: connection's start as the proxy saw it
TIME_FIELDS = ("t", "tr", "Ts", "T", "Tl")
_SYSLOG = (
    r"(?:<\d+>)?(?:\d +\S+ +\S+ +\S+ +\S+ +\S+ +(?:\[.*?\]|-) +"  # RFC 5424
    r"|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ \S+?(?:\[\d+\])?: )?"  # RFC 3164
)
_TOKEN = re.compile(r"%(?:\{([^}]*)\})?(?:\[([^\]]*)\]|(\w+))|%%|\\(.)")


def format_text(written: str) -> str:
    """A ``log-format`` line as the configuration writes it, surrounding quotes removed."""
    text = written.strip()
    text = re.sub(r"^log-format\s+", "", text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text


def compile_format(written: str) -> tuple[re.Pattern[str], list[str]]:
    """The pattern matching a whole line of HAProxy's log format ``written`` (``tcp``,
    ``http`` or a ``log-format``) and its field names in order."""
    fmt = format_text(DEFAULT_FORMATS.get(written.strip(), written))
    names: list[str] = []
    out, pos, optional = ["^", _SYSLOG], 0, False
    for m in _TOKEN.finditer(fmt):
        out.append(_literal(fmt[pos:m.start()], optional))
        pos = m.end()
        optional = False
        if m.group(0) == "%%":
            out.append("%")
            continue
        if m.group(4) is not None:  # a backslash escape
            out.append(re.escape(m.group(4)))
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
            names.append(name)
            out.append(f"({pattern})")
    out.append(_literal(fmt[pos:], optional) + r"[ \t]*$")
    if not names:
        raise UsageError(f"--haproxy-format {written!r}: no %variable in it")
    return re.compile("".join(out)), names


def _literal(text: str, after_optional: bool = False) -> str:
    """Literal format text, a run of spaces matching one or more; after a field HAProxy
    may leave out (``%hr`` without captures, and its space with it), zero or more."""
    if not text:
        return ""
    out = r" +".join(re.escape(part) for part in re.split(r" +", text))
    if after_optional and out.startswith(r" +"):
        out = r" *" + out[2:]
    return out


def unquote(values: list[str | None]) -> list[str | None]:
    """``"GET / HTTP/1.1"`` -> ``GET / HTTP/1.1`` for the ``+Q`` fields."""
    return [v[1:-1] if v and len(v) >= 2 and v[0] == v[-1] == '"' else v for v in values]
