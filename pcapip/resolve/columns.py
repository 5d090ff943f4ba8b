"""The columns ``pcapip resolve`` adds to every log record, declared once.

The CLI's writers, ``pcapip.resolve``'s frame and the README read this tuple. Each record
keeps its own fields (named as its log format names them) and gets these, in this order.
Plain Python only: the CLI offers the choices without loading pandas.
"""

from __future__ import annotations

from dataclasses import dataclass

#: exact: the one connection from the logged egress ip and port open at the record's time;
#: by-address: the log had no port, and exactly one connection from that address was open;
#: ambiguous: several were (no client is given: never a guess); none: no connection.
MATCHES: tuple[str, ...] = ("exact", "by-address", "ambiguous", "none")


@dataclass(frozen=True)
class Added:
    """One column resolve adds: its name, its kind (as ``flows.columns`` kinds) and doc."""

    name: str
    kind: str
    doc: str


ADDED: tuple[Added, ...] = (
    Added("client_ip", "ip", "the real client of the record's connection (empty unless matched)"),
    Added("client_port", "port", "the real client's port"),
    Added("method", "category", "how the connection carried its client (the flow's `method`)"),
    Added("flow", "int", "the connection's flow number, as `pcapip show --flow` takes it"),
    Added(
        "match",
        "category",
        "`exact` (the one connection from the logged egress ip:port open at the record's "
        "time), `by-address` (no port logged: the only connection from that address open "
        "then), `ambiguous` (several were: no client, never a guess), `none` (no connection, "
        "e.g. the capture does not cover the time)",
    ),
    Added("candidates", "int", "connections that could have carried the record (1 when matched)"),
)

def added_table() -> str:
    """The README's table of the columns resolve adds (``tests/test_resolve_cli.py``)."""
    lines = ["| column | meaning |", "|---|---|"]
    lines += [f"| `{c.name}` | {c.doc} |" for c in ADDED]
    return "\n".join(lines) + "\n"


#: The added column names, in output order.
ADDED_COLUMNS: tuple[str, ...] = tuple(c.name for c in ADDED)

#: Output formats of ``pcapip resolve`` (json: JSON Lines).
RESOLVE_FORMATS: tuple[str, ...] = ("csv", "json", "table")
