"""The flow table: every flow's row, numbered, with the findings that compare flows.

A missing client address only means something next to flows that have one
(same origin port), and a TOA with no room left only matters on a port that
uses TOA; so these findings (``pcapip.flows.crossflow``) wait until every flow
of every capture is known. The rows stay packed (``pcapip.flows.packed``) in the table too: exports read
them a slice at a time, and Python lists are built only for the columns a
caller asks for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from pcapip.errors import CaptureWarning
from pcapip.flows.attempts import FloodSummary, flood_summary
from pcapip.flows.columns import COLUMNS, of_kind
from pcapip.flows.crossflow import Extra, cross_flow
from pcapip.flows.findings import CATALOGUE, Finding, Level
from pcapip.flows.oddities import ToaKindSeen, Undecoded, announcers, toa_kinds_seen
from pcapip.flows.packed import (
    DiskStore,
    MemStore,
    PackedRows,
    Vocab,
    distinct,
    ints_out,
)
from pcapip.flows.reorder import Moved, in_order
from pcapip.flows.store import take_trouble
from pcapip.flows.tally import counts, findings_by_flow, findings_column, gathered

if TYPE_CHECKING:
    from pcapip.flows.tracker import FlowTracker
    from pcapip.rules import RuleSet


# output column -> packed row field, where the names differ
_ROW_NAME = {"start": "start_ns", "end": "end_ns"}
_IPS = frozenset(of_kind("ip"))
_TEXTS = frozenset(of_kind("category", "text"))


class Columns(MutableMapping[str, list[Any]]):
    """The table's columns as Python lists (missing values None), each built on first use.

    A list assigned or changed here is what the exports write.
    """

    def __init__(self, table: FlowTable) -> None:
        self._table = table
        self._lists: dict[str, list[Any]] = {}

    def __getitem__(self, name: str) -> list[Any]:
        got = self._lists.get(name)
        if got is None:
            if name not in COLUMNS:
                raise KeyError(name)
            got = self._lists[name] = self._table.column(name, 0, len(self._table))
        return got

    def __setitem__(self, name: str, values: list[Any]) -> None:
        self._lists[name] = values

    @property
    def assigned(self) -> set[str]:
        """Columns built as lists (by a caller's access or assignment): what the exports
        must write, since the caller may have changed them."""
        return set(self._lists)

    def __delitem__(self, name: str) -> None:
        del self._lists[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COLUMNS)

    def __len__(self) -> int:
        return len(COLUMNS)

    def slice(self, name: str, lo: int, hi: int) -> list[Any]:
        """Rows ``lo:hi`` of one column, without building the whole list."""
        got = self._lists.get(name)
        if got is not None:
            return got[lo:hi]
        if name not in COLUMNS:
            raise KeyError(name)
        return self._table.column(name, lo, hi)


class FlowTable:
    """One row per flow, in order of each flow's first packet (flow ids 1..n).

    ``columns`` maps each output column to a list; ``findings`` lists every
    finding per flow in packet order; ``header_frames`` maps a flow id to the
    (capture, packet) pairs that carried its client address. Times are integer
    nanoseconds since the epoch (UTC). The rows themselves stay packed, in
    memory or (for a large capture) in temporary files.
    """

    def __init__(
        self,
        rows: PackedRows,
        vocab: Vocab,
        stats: dict[str, int],
        captures: Sequence[str] = (),
    ) -> None:
        # ``rows.cols`` also holds ``findings_col`` (per flow: the vocabulary code of its
        # ';'-joined codes) and every finding in output order (``F_flow``, ``F_code``,
        # ``F_msg``, ``F_frame``, ``F_cap``)
        self.rows = rows
        self.vocab = vocab
        self.stats = stats
        self.captures: list[str] = list(captures)
        self.columns = Columns(self)
        # facts about the capture as a whole, said once in the report (not per flow):
        # oddities met while reading (never silent, never an exit status)
        self.warnings: list[CaptureWarning] = []
        # why packets gave no TCP/UDP flow: label -> packets ("ARP": 8, ...)
        self.undecoded: dict[str, int] = {}
        # source addresses that announced a client (TOA/PROXY) -> flows, most first
        self.announcers: dict[str, int] = {}
        self.trusted_checked = False  # --trusted given: client.untrusted was judged
        # TOA kinds that carried clients, and whether --toa-kind asked for kinds
        self.toa_kinds: list[ToaKindSeen] = []
        self.toa_asked = False
        # connection attempts that never completed (SYN flood?): counts and top sources
        self.flood = FloodSummary()
        # --rules: the forwarding rules the flows were judged against (None: not given)
        self.rules: RuleSet | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def raw(self, name: str, lo: int, hi: int) -> tuple[str, np.ndarray]:
        """Rows ``lo:hi`` of output column ``name`` as stored, with how to read them:
        "int" (NULL for missing; times are nanoseconds), "ip" (address codes of
        ``vocab``), "text" (vocabulary codes, -1 for missing)."""
        if name not in COLUMNS:
            raise KeyError(name)
        if name == "flow":
            return "int", np.arange(lo + 1, min(hi, len(self)) + 1, dtype=np.int64)
        store = self.rows.cols
        if name == "findings":
            return "text", store.slice("findings_col", lo, hi)
        if name == "rule":
            if "rule_col" in store:
                return "text", store.slice("rule_col", lo, hi)
            return "text", np.full(max(0, min(hi, len(self)) - lo), self.vocab.code(""), np.int32)
        values = store.slice(_ROW_NAME.get(name, name), lo, hi)
        return ("ip" if name in _IPS else "text" if name in _TEXTS else "int"), values

    def column(self, name: str, lo: int, hi: int) -> list[Any]:
        """Rows ``lo:hi`` of output column ``name`` as Python values."""
        kind, values = self.raw(name, lo, hi)
        if kind == "ip":
            return self.vocab.ip_decode(values)
        if kind == "text":
            return self.vocab.decode(values)
        return ints_out(values)

    @cached_property
    def findings(self) -> list[Finding]:
        c = self.rows.cols
        decode = self.vocab.decode
        return [
            Finding(flow, code, msg, frame, cap)
            for flow, code, msg, frame, cap in zip(
                c["F_flow"].tolist(),
                decode(c["F_code"]),
                decode(c["F_msg"]),
                ints_out(c["F_frame"]),
                c["F_cap"].tolist(),
                strict=True,
            )
        ]

    @cached_property
    def header_frames(self) -> dict[int, list[tuple[int, int]]]:
        has = np.flatnonzero(self.rows.cols["hf_len"]).tolist()
        if not has:
            return {}
        frames = self.rows.header_frames()
        return {r + 1: frames[r] for r in has}

    def worst_level(self) -> Level | None:
        """The most severe level among the findings, None without findings."""
        codes = distinct(self.rows.cols["F_code"]).tolist()
        texts = self.vocab.texts
        return max((CATALOGUE[texts[c]].level for c in codes), default=None)


def _put(store: MemStore | DiskStore, name: str, values: np.ndarray) -> None:
    """Add (to) a column."""
    if isinstance(store, DiskStore):
        store.append(name, values)
    else:
        store[name] = np.concatenate((store[name], values)) if name in store else values


def _judged(p: PackedRows, vocab: Vocab, rules: RuleSet, extra: Extra) -> PackedRows:
    """``--rules``: the rule findings added to ``extra`` and the ``rule`` column added to
    the rows, so the move into flow order carries it. (Imported here: an analysis without
    ``--rules`` does not load the rules at start-up.)"""
    from pcapip.flows.ruled import judge_rows

    cols = p.cols
    for col in judge_rows(cols.slice, len(p), vocab, rules, extra):
        _put(cols, "rule_col", col)
    return p


def _moved(p: PackedRows, wanted: np.ndarray) -> tuple[MemStore | DiskStore, Any, bool]:
    """The rows' columns in order of their first packet (``pcapip.flows.reorder``), the
    flow id of each of ``wanted`` rows, and whether that is a new store. Rows in that order
    already are not copied: the store is theirs."""
    c = p.cols
    if in_order(c, len(p)):
        return c, lambda rows: rows + 1, False
    m = Moved(c, len(p), wanted)
    return m.run(), m.flow_ids, True


def build_table(
    p: PackedRows,
    vocab: Vocab,
    stats: dict[str, int],
    captures: Sequence[str],
    trusted: Sequence[Any] | None,
    registry: Any,
    rules: RuleSet | None,
) -> FlowTable:
    """Number the flows in order of their first packet, add the findings that compare
    flows, and count. The packed rows ``p`` (coded in ``vocab``) are consumed: their
    store is closed once moved.

    Every pass over the rows reads a slice at a time (``pcapip.flows.reorder``): after
    the capture is read, a table's memory does not grow with its length."""
    n = len(p)
    # computed on the rows as they came (flow ids from where the rows move to)
    extra = cross_flow(p, vocab, trusted)
    if rules is not None:
        p = _judged(p, vocab, rules, extra)
    c = p.cols
    wanted = distinct(np.concatenate([c["f_row"], *(x[0] for x in extra.parts)]))
    store, flow_id, moved = _moved(p, wanted)
    fnd = findings_by_flow(p, vocab, flow_id, extra)
    del extra, wanted
    out: dict[str, int] = dict(stats)
    out.update(counts(p, vocab, fnd))
    said = announcers(*gathered(p, "carries_client", ["egress_ip", "carries_client"]), vocab)
    kinds = toa_kinds_seen(*gathered(p, "toa_kind", ["toa_kind"]), registry)
    out["announcers"] = len(said)
    flood = flood_summary(c, n, vocab.codes, vocab)
    out["attempts"], out["attempt_sources"] = flood.attempts, flood.sources
    if not moved:  # (the rows' own store: the per-row findings are the table's F_ now)
        for name in [m for m in store if m.startswith("f_")]:
            store.drop(name)
    elif isinstance(c, DiskStore):
        c.close()
    for col in findings_column(n, fnd, vocab):
        _put(store, "findings_col", col)
    for k in list(fnd):
        _put(store, f"F_{k}", fnd.pop(k))
    table = FlowTable(PackedRows(store), vocab, out, captures)
    table.rules = rules
    table.announcers, table.toa_kinds, table.flood = said, kinds, flood
    table.trusted_checked = trusted is not None
    return table


@dataclass
class Counted:
    """What trackers counted beside their rows: packets by kind, the frames that gave no
    TCP/UDP packet (per capture), packets inside each encapsulation, the temporary
    directories that could not be written (``store.take_trouble``: a part read by a
    cluster's worker brings its own). A recording read in parts adds its parts' counts
    (:meth:`add`)."""

    stats: dict[str, int]
    undecoded: Undecoded
    tunnels: dict[str, int]
    spool: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, tracker: FlowTracker) -> Counted:
        packets = dict(tracker.tunnels.packets)
        return cls(dict(tracker.stats), tracker.undecoded, packets, take_trouble())

    def add(self, other: Counted) -> None:
        for name, n in other.stats.items():
            self.stats[name] = self.stats.get(name, 0) + n
        self.undecoded.add_counts(other.undecoded)
        for name, n in other.tunnels.items():
            self.tunnels[name] = self.tunnels.get(name, 0) + n
        self.spool += [t for t in other.spool if t not in self.spool]


def finish_table(
    tracker: FlowTracker,
    captures: Sequence[str],
    trusted: str | Sequence[Any] | None = None,
    *,
    warnings: Iterable[CaptureWarning] = (),
    toa_asked: bool = False,
    rules: RuleSet | None = None,
) -> FlowTable:
    """End every open flow and build the flow table, as ``pcapip analyze`` does.

    ``trusted`` is the ``--trusted`` spec or its parsed networks; ``warnings`` the
    sources' (``CaptureSource.warnings``), to which the tracker's undecoded-packet
    warnings are added;
    ``toa_asked``: ``--toa-kind`` was given (the report then shows the TOA
    counters even when no TOA was seen); ``rules``: ``--rules``, each flow judged against.
    """
    tracker.end_all()
    return table_of(
        PackedRows.concat(tracker.take_blocks()),
        tracker.vocab,
        Counted.of(tracker),
        captures,
        trusted,
        registry=tracker.registry,
        warnings=warnings,
        toa_asked=toa_asked,
        rules=rules,
    )


def table_of(
    block: PackedRows,
    vocab: Vocab,
    counted: Counted,
    captures: Sequence[str],
    trusted: str | Sequence[Any] | None = None,
    *,
    registry: Any = None,
    warnings: Iterable[CaptureWarning] = (),
    toa_asked: bool = False,
    rules: RuleSet | None = None,
) -> FlowTable:
    """The flow table of every row of a recording (``block``, consumed) and what its
    trackers counted: :func:`finish_table`'s second half, shared with a recording read in
    parts (``pcapip.flows.parts``)."""
    from pcapip.flows.trusted import parse_trusted

    if isinstance(trusted, str) or (
        trusted is not None and any(isinstance(t, str) for t in trusted)
    ):
        trusted = parse_trusted(trusted)
    table = build_table(block, vocab, counted.stats, list(captures), trusted, registry, rules)
    table.stats["captures"] = len(captures)
    undecoded = counted.undecoded
    table.stats["packets_blind"] = undecoded.blind_packets()
    for name, n in counted.tunnels.items():  # packets inside each encapsulation
        table.stats[f"packets_in_{name}"] = n
    table.undecoded = undecoded.totals()
    # an unsupported link type is in the undecoded summary already, with its count
    table.warnings = [w for w in warnings if w.kind != "linktype_unsupported"]
    table.warnings += undecoded.warnings(captures)
    table.warnings += spool_warnings([*counted.spool, *take_trouble()])
    table.toa_asked = toa_asked
    return table


def spool_warnings(trouble: list[tuple[str, str]]) -> list[CaptureWarning]:
    """A warning per temporary directory that could not be written (``pcapip.flows.store``;
    ``pcapip live`` says them as they happen)."""
    said = (
        "pcapip's temporary files could not be written here ({}): rows of ended flows were "
        "held in memory instead (nothing is lost; memory grew with the capture). Set TMPDIR "
        "to a directory with room"
    )
    return [
        CaptureWarning(where, None, None, said.format(why), kind="spool_in_memory")
        for where, why in dict.fromkeys(trouble)
    ]
