"""A proxy's forwarding rules in EdgeOne's batch format, read strictly.

One rule per line, five space-separated fields, case-insensitive (EdgeOne, "Batch
Configuring Forwarding Rules")::

    tcp:80-90 origin.example.com 90-100 off toa
    udp:38888;38889 og:game-origins 38888;38889 off ppv2

forwarding protocol:port(s), origin address (IP, domain or ``og:GROUP``), origin port(s),
session persistence (``on``/``off``), how the client address is passed (``toa``, ``ppv1``,
``ppv2``, ``off``). Every problem is reported with its line number and the file is refused:
a rule skipped in silence would make every flow it covers look unmatched.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from pcapip.errors import PcapipError

#: how a rule passes the client address (the console's "Pass client IP")
RULE_METHODS = ("toa", "ppv1", "ppv2", "off")
MAX_RULES = 2000  # per L4 proxy instance
MAX_PORTS = 20  # forwarding ports listed in one rule
PORT_RANGE = (1, 64999)  # forwarding ports the console accepts
#: forwarding ports EdgeOne keeps for itself, per protocol
RESERVED = {"tcp": (3943, 3944, 6088, 36000, 56000), "udp": (4789, 4790, 6080, 61708)}
_HOST = re.compile(r"(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]{1,63}\.?")
_SHOWN_ERRORS = 20


class RulesError(PcapipError):
    """A rules file that cannot be used as a whole: one line per problem, with line numbers."""

    def __init__(self, path: str, problems: list[tuple[int, str]]) -> None:
        self.path = path
        self.problems = problems
        shown = [
            f"{path}{f', line {n}' if n else ''}: {msg}" for n, msg in problems[:_SHOWN_ERRORS]
        ]
        more = len(problems) - _SHOWN_ERRORS
        if more > 0:
            shown.append(f"{path}: and {more} more problem{'s' if more > 1 else ''}")
        super().__init__("\n".join(shown))


@dataclass(frozen=True)
class Rule:
    """One forwarding rule, as its line says it."""

    line: int
    text: str  # the line, fields joined by one space
    transport: str  # "tcp" or "udp"
    forwarding: tuple[int, ...]  # the ports clients connect to, in the rule's order
    origin: str  # as written (lower case): an address, a domain or og:GROUP
    origin_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None  # when an IP literal
    origin_ports: tuple[int, ...]  # one port, or one per forwarding port (same order)
    persistence: bool
    method: str  # one of RULE_METHODS

    @property
    def label(self) -> str:
        """The ``rule`` column's value: line number and text."""
        return f"{self.line}: {self.text}"

    def covers_port(self, port: int) -> bool:
        return port in self.origin_ports

    def forwarding_for(self, origin_port: int) -> tuple[int, ...]:
        """The forwarding ports whose traffic this rule sends to ``origin_port``."""
        if len(self.origin_ports) == 1:
            return self.forwarding if origin_port == self.origin_ports[0] else ()
        return tuple(
            f for f, o in zip(self.forwarding, self.origin_ports, strict=True) if o == origin_port
        )


def _ports(spec: str, what: str, low: int, high: int) -> tuple[tuple[int, ...], bool]:
    """A port field: ``N``, ``A-B`` or ``N;M;…``; returns the ports and whether a range."""
    if "-" in spec and ";" in spec:
        raise ValueError(f"{what} {spec!r}: a list of ports or one range, not both")
    if "-" in spec:
        a, _, b = spec.partition("-")
        lo, hi = _port(a, what, low, high), _port(b, what, low, high)
        if lo > hi:
            raise ValueError(f"{what} range {spec!r} runs backwards")
        return tuple(range(lo, hi + 1)), True
    items = spec.split(";")
    ports = tuple(_port(p, what, low, high) for p in items)
    if len(set(ports)) != len(ports):
        raise ValueError(f"{what} {spec!r} lists a port twice")
    return ports, False


def _port(text: str, what: str, low: int, high: int) -> int:
    if not text.isdigit() or len(text) > 6:
        raise ValueError(f"{what} {text!r} is not a port number")
    n = int(text)
    if not low <= n <= high:
        raise ValueError(f"{what} {n} is out of {low}-{high}")
    return n


def _origin(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if text.startswith("og:"):
        if not text[3:] or any(c.isspace() for c in text):
            raise ValueError(f"origin group {text!r} has no name")
        return None
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        pass
    if not _HOST.fullmatch(text):
        raise ValueError(f"origin {text!r} is not an IP address, a domain or og:GROUP")
    return None


def parse_rule(line: int, raw: str) -> Rule:
    """One rule line (not blank, not a comment); ValueError naming the field at fault."""
    fields = raw.lower().split()
    if len(fields) != 5:
        raise ValueError(
            f"expected 5 fields (protocol:ports origin origin-ports persistence method), "
            f"found {len(fields)}"
        )
    fwd, origin, oports, persist, method = fields
    proto, sep, fports = fwd.partition(":")
    if not sep or proto not in ("tcp", "udp"):
        raise ValueError(f"forwarding {fwd!r}: protocol must be tcp or udp, as tcp:PORTS")
    forwarding, fwd_range = _ports(fports, "forwarding port", *PORT_RANGE)
    if not fwd_range and len(forwarding) > MAX_PORTS:
        raise ValueError(f"{len(forwarding)} forwarding ports listed: at most {MAX_PORTS}")
    reserved = sorted(set(forwarding) & set(RESERVED[proto]))
    if reserved:
        raise ValueError(f"forwarding port {reserved[0]} is reserved by the proxy for {proto}")
    origin_ip = _origin(origin)
    origin_ports, origin_range = _ports(oports, "origin port", 1, 65535)
    if len(origin_ports) > 1:
        if origin_range and not fwd_range:
            raise ValueError("an origin port range needs a forwarding port range")
        if len(origin_ports) != len(forwarding):
            raise ValueError(
                f"forwarding {fports} has {len(forwarding)} ports, origin {oports} has "
                f"{len(origin_ports)}: ranges of different lengths"
            )
    if persist not in ("on", "off"):
        raise ValueError(f"session persistence {persist!r}: on or off")
    if method not in RULE_METHODS:
        raise ValueError(f"pass-client-IP method {method!r}: toa, ppv1, ppv2 or off")
    if proto == "udp" and method in ("toa", "ppv1"):
        raise ValueError(f"{method} is TCP only: a UDP rule passes the client by ppv2 or off")
    return Rule(
        line,
        " ".join(fields),
        proto,
        forwarding,
        origin,
        origin_ip,
        origin_ports,
        persist == "on",
        method,
    )


def parse_rules(text: str, path: str = "<rules>") -> list[Rule]:
    """Every rule of a rules file; blank lines and ``#`` comments are skipped. Raises
    :class:`RulesError` listing every problem (a bad line, too many rules, a forwarding
    port used twice) with its line number."""
    rules: list[Rule] = []
    problems: list[tuple[int, str]] = []
    used: dict[tuple[str, int], int] = {}
    # lines as an editor numbers them: split at newlines only (str.splitlines also splits
    # at form feeds, \x1c-\x1e, U+2028..., which would put problems on lines nobody sees)
    for n, raw in enumerate(text.split("\n"), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            rule = parse_rule(n, raw)
        except ValueError as exc:
            problems.append((n, str(exc)))
            continue
        if len(rules) == MAX_RULES:
            problems.append(
                (n, f"more than {MAX_RULES} rules (the proxy takes at most {MAX_RULES})")
            )
        for p in rule.forwarding:
            first = used.setdefault((rule.transport, p), n)
            if first != n:
                problems.append(
                    (n, f"{rule.transport} port {p} is already forwarded by line {first}")
                )
                break
        rules.append(rule)
    if problems:
        raise RulesError(path, problems)
    return rules


def load_rules(path: str | Path) -> list[Rule]:
    """The rules of a file (UTF-8); a file that cannot be read is a :class:`RulesError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RulesError(str(path), [(0, f"cannot read: {exc.strerror or exc}")]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RulesError(str(path), [(line, "not UTF-8 text")]) from None
    return parse_rules(text, str(path))
