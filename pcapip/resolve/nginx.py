"""nginx access logs, read with the ``log_format`` they were written with.

The format is taken exactly as written in nginx.conf (one or several quoted strings, or
bare text; ``log_format NAME`` and ``escape=`` may be left in) and compiled into one
pattern: literal text must appear as written, each ``$variable`` becomes a field named
without its ``$``. Well-known variables get a tight pattern (an address, a number, a time);
any other takes the shortest text that lets the rest of the line fit.
"""

from __future__ import annotations

import re

from pcapip.errors import UsageError
from pcapip.resolve.rx import DIGIT, NOT_SPACE, compile_line, escape, group

#: nginx's predefined format (ngx_http_log_module), used when none is given
COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)

_D = DIGIT
_NUMBER = f"{_D}+|-"
_SECONDS = rf"{_D}+\.{_D}+|-"
PATTERNS: dict[str, str] = {
    "remote_addr": f"{NOT_SPACE}+",
    "realip_remote_addr": f"{NOT_SPACE}+",
    "proxy_protocol_addr": f"{NOT_SPACE}*",
    "server_addr": f"{NOT_SPACE}+",
    "remote_port": _NUMBER,
    "realip_remote_port": _NUMBER,
    "proxy_protocol_port": f"{_D}*|-",
    "server_port": _NUMBER,
    "status": f"{_D}{{3}}|-",
    "body_bytes_sent": _NUMBER,
    "bytes_sent": _NUMBER,
    "request_length": _NUMBER,
    "connection": _NUMBER,
    "connection_requests": _NUMBER,
    "pid": _NUMBER,
    "request_time": _SECONDS,
    "session_time": _SECONDS,
    "msec": rf"{_D}+\.{_D}+",
    "time_local": f"{_D}{_D}/[A-Z][a-z]{{2}}/{_D}{{4}}:{_D}{_D}:{_D}{_D}:{_D}{_D} [+-]{_D}{{4}}",
    "time_iso8601": (f"{_D}{{4}}-{_D}{_D}-{_D}{_D}T{_D}{_D}:{_D}{_D}:{_D}{_D}"
                     f"(?:[+-]{_D}{_D}:{_D}{_D}|Z)"),
}
#: fields that name the time, the most precise first
TIME_FIELDS = ("msec", "time_iso8601", "time_local")
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_QUOTED = re.compile(r"""\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""", re.S)


def format_text(written: str) -> str:
    """The format string itself from what nginx.conf says: ``log_format main '...' '...';``,
    ``'...' '...'`` or bare text. Quoted parts are joined, nginx's escapes undone."""
    text = written.strip().rstrip(";").strip()
    head = re.match(r"log_format\s+\w+\s*", text)
    if head:
        text = text[head.end():]
    text = re.sub(r"^escape=\w+\s+", "", text)
    if not text or text[0] not in "'\"":
        return text
    parts, pos = [], 0
    while pos < len(text):
        m = _QUOTED.match(text, pos)
        if m is None:
            if text[pos:].strip():
                raise UsageError(f"--nginx-format: text after a quoted part: {text[pos:]!r}")
            break
        part = m.group(1) if m.group(1) is not None else m.group(2)
        parts.append(re.sub(r"\\(.)", r"\1", part))
        pos = m.end()
    return "".join(parts)


def compile_format(written: str) -> tuple[re.Pattern[str], list[str]]:
    """The pattern matching a whole line of ``written`` and its field names in order (a
    variable used twice is one field; field ``i`` is the group named ``f<i>``)."""
    fmt = format_text(written)
    names: list[str] = []
    out, pos = ["^"], 0
    pieces = list(_VAR.finditer(fmt))
    if not pieces:
        raise UsageError(f"--nginx-format {written!r}: no $variable in it")
    for m in pieces:
        out.append(escape(fmt[pos:m.start()]))
        name = m.group(1) or m.group(2)
        quoted = fmt[m.start() - 1:m.start()] == '"' and fmt[m.end():m.end() + 1] == '"'
        pattern = PATTERNS.get(name, r'[^"\n]*' if quoted else r".*?")
        if name in names:
            out.append(f"(?:{pattern})")
        else:
            out.append(group(len(names), pattern))
            names.append(name)
        pos = m.end()
    out.append(escape(fmt[pos:]) + "$")
    try:
        return compile_line("".join(out)), names
    except re.error as exc:  # pragma: no cover - every piece is escaped or ours
        raise UsageError(f"--nginx-format {written!r}: {exc}") from None
