"""The output columns, declared once (like Zeek's ``conn.log`` record).

Each flow row has these columns, in this order, in CSV, TSV, JSON Lines, Parquet,
``Analysis.flows``, ``pcapip live`` and the TUI. Everything else reads this tuple:
the exports' header, the pandas dtypes (``pcapip.report.analysis``), the filter
language's field classes (``pcapip.report.filters``), the TUI's column titles, and
the README's "Output schema" table (``tests/test_readme.py`` holds it to
:func:`schema_table`). Plain Python only: the CSV path imports it without pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: ip: an address (text); port: 0-65535, may be missing; int: a count or number;
#: time: integer nanoseconds since the epoch (ISO 8601 UTC in text exports);
#: category: one word of few (a fixed ``vocabulary`` when declared); text: free text;
#: codes: ``;``-joined finding codes (``pcapip.flows.findings``).
Kind = Literal["ip", "port", "int", "time", "text", "category", "codes"]


@dataclass(frozen=True)
class Column:
    """One output column: its name, kind, one-line doc and (for closed sets) vocabulary."""

    name: str
    kind: Kind
    doc: str  # the README's "meaning"; columns next to each other with one doc share a row
    vocabulary: tuple[str, ...] | None = None  # every value the column can hold, if closed
    title: str = ""  # a table's header; an address's title heads its joined address:port
    distinct: bool = False  # values mostly distinct: pandas text, not a category


TRANSPORTS = ("tcp", "udp")
METHODS = ("toa", "ppv1", "ppv2", "none", "unknown")
#: connection attempts that never completed (pcapip.flows.attempts): Zeek's S0, REJ and a
#: SYN_RECV the client never completed
ATTEMPT_STATUSES = ("unanswered", "refused", "half-open")
STATUSES = ("ok", "malformed", "incomplete", "absent", "mid-stream", *ATTEMPT_STATUSES)

_EGRESS = "the proxy's egress address: the connection's source as the origin sees it"
_ORIGIN = "the origin (the side that answered the SYN)"
_CLIENT = "the real client"
_PROXY = "the address the client connected to (PROXY destination; empty for TOA)"
_PP = "PROXY command (`PROXY`/`LOCAL`) and family (`TCP4`, `INET6`, …)"
_COUNTS = "packets and bytes of the flow, both directions"
_TIMES = "first and last packet (UTC)"

SCHEMA: tuple[Column, ...] = (
    Column("flow", "int", "flow number, as `pcapip show --flow` takes it", title="No."),
    Column("transport", "category", "`tcp` or `udp`", TRANSPORTS, title="L4"),
    Column("start", "time", _TIMES, title="Start (UTC)"),
    Column("end", "time", _TIMES, title="End (UTC)"),
    Column("egress_ip", "ip", _EGRESS, title="Egress"),
    Column("egress_port", "port", _EGRESS, title="Egress port"),
    Column("origin_ip", "ip", _ORIGIN, title="Origin"),
    Column("origin_port", "port", _ORIGIN, title="Origin port"),
    Column(
        "method",
        "category",
        "`toa`, `ppv1`, `ppv2`, `none` (connection start seen, no client address carried), "
        "`unknown` (start not captured)",
        METHODS,
        title="Method",
    ),
    Column("client_ip", "ip", _CLIENT, title="Client", distinct=True),
    Column("client_port", "port", _CLIENT, title="Client port"),
    Column("proxy_ip", "ip", _PROXY, title="Proxy (dst)"),
    Column("proxy_port", "port", _PROXY, title="Proxy port"),
    # the command's title heads the TUI's joined command/family column
    Column("pp_command", "category", _PP, title="PP cmd/family"),
    Column("pp_family", "category", _PP, title="PP family"),
    Column(
        "tlvs",
        "text",
        "decoded TLVs as `name=value;…` (`authority`, `alpn`, `unique_id`, `crc32c=ok|bad|unchecked`, "
        "`ssl.*`, `aws.vpce_id`, `azure.link_id`, `gcp.psc_id`, `netns`)",
        title="TLVs",
    ),
    Column("packets", "int", _COUNTS, title="Pkts"),
    Column("bytes", "int", _COUNTS, title="Bytes"),
    Column("status", "category", ", ".join(f"`{s}`" for s in STATUSES), STATUSES, title="Status"),
    Column("findings", "codes", "`;`-joined finding codes (catalogue below)", title="Findings"),
    Column(
        "tunnel",
        "category",
        "the tunnel the connection was found in, e.g. `vxlan:5001`, `geneve:7`, `gre:key=42`, "
        "`erspan2:session=7`, `mpls:1001/2002`, `pppoe:0x11`, `ipip`; empty for none",
        title="Tunnel",
    ),
    Column(
        "rule",
        "category",
        "with `--rules`: the forwarding rule covering the flow, as `LINE: TEXT`; empty for none",
        title="Rule",
    ),
)

#: The column names, in output order.
COLUMNS: tuple[str, ...] = tuple(c.name for c in SCHEMA)
#: name -> declaration
BY_NAME: dict[str, Column] = {c.name: c for c in SCHEMA}


def of_kind(*kinds: Kind) -> tuple[str, ...]:
    """The names of the columns of these kinds, in output order."""
    return tuple(c.name for c in SCHEMA if c.kind in kinds)


def schema_table() -> str:
    """The README's "Output schema" table: one row per column, or per run of neighbouring
    columns that share a doc (``egress_ip``, ``egress_port``)."""
    rows: list[tuple[list[str], str]] = []
    for c in SCHEMA:
        if rows and rows[-1][1] == c.doc:
            rows[-1][0].append(c.name)
        else:
            rows.append(([c.name], c.doc))
    lines = ["| column | meaning |", "|---|---|"]
    for names, doc in rows:
        cell = ", ".join(f"`{n}`" for n in names)
        lines.append(f"| {cell} | {doc.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"
