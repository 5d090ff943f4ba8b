"""A recording read in parts (one task per capture file), with exactly the result of one read.

``pcapip analyze a.pcap b.pcap …`` reads the files in order as one recording: a connection
rotated from one file into the next is one flow. A cluster reads each file on its own
(:func:`read_part`), from an empty tracker, and the parts are joined here:

* A flow's row depends only on its own packets (its connection's two endpoints) and on
  the capture clock at the recording's end: timeouts are decided per packet, so batch
  boundaries never change a row (``kernel_flow.starts_anew``), and the findings that
  compare flows wait for the whole table (``table.table_of``).
* So the rows of a part are final unless their connection was still open when an earlier
  part ended (:attr:`Part.open_groups`), or closed but lingering then and seen again in a
  later part (:attr:`Part.done_groups`). Those connections (keyed by both endpoints, see
  :func:`groups_of_packets`, chosen by :func:`replayed_groups`) are *replayed*: every packet of theirs in every file is taken
  out (:func:`take_frames`, a second task per file that holds one) and fed, in recording
  order, to one fresh tracker (:func:`replay`), whose clock then runs to the recording's
  end; their rows from the parts are dropped.
* :func:`join` recodes each part's texts into one vocabulary, adds the counters and
  builds the table as :func:`pcapip.flows.table.finish_table` does: flow numbers, output
  and findings are byte for byte those of one read.

A group key is a hash; two connections sharing one are replayed together, which changes
nothing (replaying a connection gives its row), so collisions cost time, never rows.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcapip.decode.tunnels import udp_tunnel_ports
from pcapip.errors import CaptureError, CaptureWarning
from pcapip.flows.oddities import Undecoded
from pcapip.flows.packed import IP_COLS, NO_IP, TEXT_COLS, PackedRows, Vocab
from pcapip.flows.run import new_tracker, read_into, registry_for, replay_into
from pcapip.flows.store import MemStore
from pcapip.flows.table import Counted, FlowTable, table_of
from pcapip.sources.batch import FrameBatch
from pcapip.sources.order import Span, overlaps

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_V4_MAPPED = 0xFFFF_0000_0000
_PROTO = {"tcp": 6, "udp": 17}
# packed columns with entries per header frame or per finding, not per row
_FLAT = frozenset({"hf_cap", "hf_frame", "f_row", "f_code", "f_msg", "f_frame", "f_cap"})


@dataclass(frozen=True)
class PartOptions:
    """What every part's tracker is made with (``pcapip analyze``'s options)."""

    toa_kinds: tuple[str, ...] = ()
    attempt_timeout: float | None = None
    vxlan_ports: tuple[int, ...] = ()
    batch_size: int = 65536
    chunk_size: int = 4 * 1024 * 1024


# frames per run of the frame index: the second pass decodes only the runs it needs
RUN = 4096


@dataclass
class FrameIndex:
    """Per run of ``RUN`` frames of a file: its first frame number, the byte offset of that
    frame's record (where a second read of a pcap file can start) and its connections."""

    firsts: list[int] = field(default_factory=list)
    groups: list[np.ndarray] = field(default_factory=list)
    # per run: (byte offset, interfaces, sections known) at its first frame
    starts: list[tuple[int, int, int]] = field(default_factory=list)

    def add(self, frames: np.ndarray, groups: np.ndarray, offsets: np.ndarray, src: Any) -> None:
        known = (len(src.interfaces), len(src.sections))
        for lo in range(0, frames.size, RUN):
            self.firsts.append(int(frames[lo]))
            self.groups.append(np.unique(groups[lo : lo + RUN]))
            self.starts.append((int(offsets[lo]), *known))

    def start_of(self, frame: int) -> tuple[int, int, int, int]:
        """Where the run that begins at ``frame`` starts, as ``CaptureSource.skip_to``
        takes it: (byte offset, frame number, interfaces, sections)."""
        offset, interfaces, sections = self.starts[bisect.bisect_left(self.firsts, frame)]
        return offset, frame, interfaces, sections

    def runs_with(self, keys: np.ndarray) -> list[tuple[int, int]]:
        """(first, last) frame numbers of the runs holding any of ``keys``, merged."""
        if not self.firsts:  # (a file with no frame)
            return []
        sizes = np.fromiter((g.size for g in self.groups), dtype=np.int64, count=len(self.groups))
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        hit = np.isin(np.concatenate(self.groups), keys)  # one pass over every run's keys
        held = np.flatnonzero(np.add.reduceat(hit, starts) > 0).tolist()
        out: list[tuple[int, int]] = []
        for k in held:
            first = self.firsts[k]
            last = self.firsts[k + 1] - 1 if k + 1 < len(self.firsts) else 2**62
            if out and out[-1][1] == first - 1:
                out[-1] = (out[-1][0], last)
            else:
                out.append((first, last))
        return out


@dataclass
class Part:
    """Consecutive capture files read on their own: their rows, and what the join needs."""

    number: int  # the place of its first file in the recording (its rows' ``capture``
    # counts on from here, a file at a time)
    names: list[str]  # its files, in order
    rows: PackedRows  # every flow seen, those still open at the end ended as at a capture end
    texts: list[str]  # the vocabulary the rows are coded in
    groups: np.ndarray  # uint64 connection key of each row
    open_groups: np.ndarray  # those of the flows still open at the end, not closed
    done_groups: np.ndarray  # those of the flows closed (or reset) but still lingering
    runs: list[FrameIndex]  # per file, which connections its runs of frames hold
    counted: Counted
    warnings: list[CaptureWarning] = field(default_factory=list)
    errors: list[CaptureError] = field(default_factory=list)
    now: int | None = None  # the tracker's last clock (None: no TCP/UDP packet)
    frames: int = 0
    bytes_read: int = 0
    spans: list[Span] = field(default_factory=list)  # per file: when its packets were taken


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit."""
    h = (h ^ (h >> np.uint64(30))) * _M2
    h = (h ^ (h >> np.uint64(27))) * _M3
    return h ^ (h >> np.uint64(31))


def _group(
    a: tuple[np.ndarray, np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray, np.ndarray],
    proto: np.ndarray,
) -> np.ndarray:
    """One key per connection whichever side sent the packet: (hi, lo, port) of each end."""
    with np.errstate(over="ignore"):
        ha = _mix(_mix(a[0] ^ _M1) ^ a[1]) + a[2].astype(np.uint64) * _M1
        hb = _mix(_mix(b[0] ^ _M1) ^ b[1]) + b[2].astype(np.uint64) * _M1
        lo, hi = np.minimum(ha, hb), np.maximum(ha, hb)
        return _mix(_mix(lo) + hi * _M3 + proto.astype(np.uint64))


def groups_of_packets(p: Any) -> np.ndarray:
    """Each decoded packet's connection key (frames without TCP/UDP get a key too: they
    are fed wherever they go and the tracker skips them)."""
    return _group((p.src_hi, p.src_lo, p.sport), (p.dst_hi, p.dst_lo, p.dport), p.proto)


def _halves(codes: np.ndarray, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) address halves of address codes, IPv4 mapped as the decoder stores it."""
    import ipaddress

    hi = np.zeros(codes.size, dtype=np.uint64)
    lo = (codes.astype(np.uint64) | np.uint64(_V4_MAPPED)) if codes.size else hi.copy()
    for k in np.flatnonzero(codes < 0).tolist():
        c = int(codes[k])
        value = 0 if c == NO_IP else int(ipaddress.ip_address(vocab.texts[-2 - c]))
        hi[k], lo[k] = np.uint64(value >> 64), np.uint64(value & (2**64 - 1))
    return hi, lo


def groups_of_rows(rows: PackedRows, vocab: Vocab) -> np.ndarray:
    """Each row's connection key, as :func:`groups_of_packets` gives its packets."""
    c = rows.cols
    proto = np.array(
        [_PROTO.get(t or "", 0) for t in vocab.decode(np.arange(len(vocab.texts)))] + [0]
    )
    eh, el = _halves(c["egress_ip"], vocab)
    oh, ol = _halves(c["origin_ip"], vocab)
    return _group(
        (eh, el, c["egress_port"].astype(np.uint64)),
        (oh, ol, c["origin_port"].astype(np.uint64)),
        proto[c["transport"]],
    )


def read_part(paths: Sequence[str], first: int, options: PartOptions) -> Part:
    """Read consecutive capture files (``paths``, the recording's files ``first`` on) as
    one part of a recording, from an empty tracker."""
    tracker = new_tracker(options.toa_kinds, options.attempt_timeout, options.vxlan_ports)
    read: dict[int, tuple[int, int]] = {}  # per file: (frames, bytes) read so far

    def progress(ci: int, frames: int, done: int, _total: int | None) -> None:
        read[ci] = (frames, done)

    runs = [FrameIndex() for _ in paths]

    def on_batch(ci: int, src: Any, batch: Any, pk: Any) -> None:
        offsets = batch.file_offset[pk.frame - batch.first_frame]
        runs[ci - first].add(pk.frame, groups_of_packets(pk), offsets, src)

    files = [(first + k, path) for k, path in enumerate(paths)]
    sizes = (options.batch_size, options.chunk_size)
    reader = read_into(tracker, files, sizes, progress, on_batch)
    ended = tracker.take_blocks()
    tracker.end_done()
    done = PackedRows.concat(tracker.take_blocks())
    tracker.end_all()
    still = PackedRows.concat(tracker.take_blocks())
    vocab = tracker.vocab
    rows = PackedRows.concat([*ended, done, still])
    if not isinstance(rows.cols, MemStore):  # (a part travels to the join whole)
        rows = PackedRows(rows.cols.to_memory())
    groups = groups_of_rows(rows, vocab)
    n_still, n_done = len(still), len(done)
    return Part(
        first,
        list(paths),
        rows,
        list(vocab.texts),
        groups,
        groups[groups.size - n_still :],
        groups[groups.size - n_still - n_done : groups.size - n_still],
        runs,
        Counted.of(tracker),
        reader.warnings,
        reader.errors,  # (captures none of whose packets decode: the join asks the sums)
        tracker.now,
        sum(f for f, _ in read.values()),
        sum(b for _, b in read.values()),
        reader.spans,
    )


def take_frames(
    path: str,
    groups: np.ndarray,
    runs: list[tuple[int, int]],
    options: PartOptions,
    starts: list[tuple[int, ...]] | None = None,
) -> list[FrameBatch]:
    """The frames of one file whose connection is in ``groups``, copied out of their
    batches; only the frames of ``runs`` ((first, last) frame numbers) are decoded, to
    find their connection. ``starts``: per run, where it starts (:meth:`FrameIndex.start_of`):
    the reader then jumps over the frames between runs where the file allows it
    (``CaptureSource.skip_to``; connections still open at a file's end have their runs at
    its start and its end), else reads through."""
    from pcapip.decode import decode
    from pcapip.sources import open_capture

    kinds = registry_for(options.toa_kinds).kinds
    ports = udp_tunnel_ports(options.vxlan_ports)
    lo = np.array([a for a, _ in runs], dtype=np.int64)
    hi = np.array([b for _, b in runs], dtype=np.int64)
    taken = []
    try:
        with open_capture(
            path, batch_size=options.batch_size, chunk_size=options.chunk_size
        ) as src:
            if starts:
                src.skip_to(*starts[0])
            for batch in src:
                numbers = batch.numbers()
                k = np.searchsorted(lo, numbers, side="right") - 1
                inside = np.flatnonzero((k >= 0) & (numbers <= hi[np.maximum(k, 0)]))
                if inside.size:
                    part = batch if inside.size == len(batch) else batch.take(inside)
                    pk = decode(part, toa_kinds=kinds, tunnel_ports=ports)
                    keep = np.flatnonzero(np.isin(groups_of_packets(pk), groups))
                    if keep.size:
                        taken.append(part.take(keep))
                last = int(numbers[-1]) if numbers.size else 0
                if last >= hi[-1]:
                    break
                nxt = int(np.searchsorted(lo, last, side="right"))  # the next run to begin
                if starts and nxt < lo.size and (nxt == 0 or hi[nxt - 1] <= last):
                    src.skip_to(*starts[nxt])  # past the runs so far: jump to the next one
    except CaptureError:
        pass  # the damage was reported by read_part; the frames before it are taken
    return taken


def replay(
    taken: Sequence[tuple[int, FrameBatch]], now: int | None, options: PartOptions
) -> tuple[PackedRows, Vocab]:
    """The rows of the connections whose frames are ``taken`` ((part index, frames) in
    recording order), as one read gives them: fed to one tracker whose clock then runs to
    ``now``, the recording's last."""
    tracker = new_tracker(options.toa_kinds, options.attempt_timeout, options.vxlan_ports)
    replay_into(tracker, taken)
    if now is not None:
        tracker.advance(now)
    tracker.end_all()
    return PackedRows.concat(tracker.take_blocks()), tracker.vocab


def replayed_groups(parts: Sequence[Part]) -> np.ndarray:
    """The connections of one recording (its parts, in order) to replay: those open, not
    closed, when a part other than the last ended, and those closed but lingering then
    whose connection has packets in a later part."""
    if len(parts) < 2:
        return np.zeros(0, dtype=np.uint64)
    seen = np.concatenate([p.groups for p in parts])
    where = np.concatenate([np.full(p.groups.size, k) for k, p in enumerate(parts)])
    order = np.lexsort((where, seen))
    uniq, first = np.unique(seen[order], return_index=True)
    last_part = where[order][np.r_[first[1:], seen.size] - 1]
    keys = []
    for k, p in enumerate(parts[:-1]):
        keys.append(p.open_groups)
        d = p.done_groups
        if d.size:
            keys.append(d[last_part[np.searchsorted(uniq, d)] > k])
    return np.unique(np.concatenate(keys))


def _recode(rows: PackedRows, texts: list[str], vocab: Vocab) -> PackedRows:
    """``rows`` coded in ``texts`` → codes of ``vocab`` (texts added as needed)."""
    if not texts:
        return rows
    m = np.array([vocab.code(t) for t in texts], dtype=np.int64)
    c = rows.cols
    out = MemStore(c)
    for n in (*TEXT_COLS, "f_code", "f_msg"):
        v = c[n]
        out[n] = np.where(v >= 0, m[np.maximum(v, 0)], v).astype(v.dtype)
    for n in IP_COLS:
        v = c[n]
        text = v < NO_IP
        out[n] = np.where(text, -2 - m[np.where(text, -2 - v, 0)], v)
    return PackedRows(out)


def _keep(rows: PackedRows, keep: np.ndarray) -> PackedRows:
    """Rows where ``keep`` (bool per row), with their per-row lists and findings."""
    if keep.all():
        return rows
    c = rows.cols
    out = MemStore()
    for n in c:
        if n not in _FLAT:
            out[n] = c[n][keep]
    hf_len = c["hf_len"].astype(np.int64)
    flat = np.repeat(keep, hf_len)
    out["hf_cap"], out["hf_frame"] = c["hf_cap"][flat], c["hf_frame"][flat]
    f_keep = keep[c["f_row"]]
    new_row = np.cumsum(keep) - 1
    out["f_row"] = new_row[c["f_row"][f_keep]]
    for n in ("f_code", "f_msg", "f_frame", "f_cap"):
        out[n] = c[n][f_keep]
    return PackedRows(out)


def join(
    parts: Sequence[Part],
    replayed: Sequence[tuple[PackedRows, Vocab]],
    cut: dict[int, np.ndarray],
    *,
    trusted: Any = None,
    toa_kinds: Sequence[str] = (),
    rules: Any = None,
    labels: Sequence[str] | None = None,
) -> tuple[FlowTable, list[CaptureError]]:
    """The table and errors one read of every part's file, in order, would give: each
    part's rows but those of the connections ``cut[part.number]`` (replayed), and the
    ``replayed`` rows. ``labels``: each file's recording (``read_recording``'s chains)."""
    vocab = Vocab()
    blocks = []
    counted = Counted({}, Undecoded(), {})
    warnings: list[CaptureWarning] = []
    errors: list[CaptureError] = []
    chains: dict[str, list[Span]] = {}  # a vantage point -> its files' spans, in order
    for part in parts:
        chains.setdefault(labels[part.number] if labels else "", []).extend(part.spans)
        rows = part.rows
        keys = cut.get(part.number)
        if keys is not None and keys.size and len(rows):
            rows = _keep(rows, ~np.isin(part.groups, keys))
        blocks.append(_recode(rows, part.texts, vocab))
        counted.add(part.counted)
        warnings += part.warnings
        errors += part.errors
    for rows, theirs in replayed:
        blocks.append(_recode(rows, list(theirs.texts), vocab))
    for spans in chains.values():
        warnings += overlaps(spans)
    names = [name for p in parts for name in p.names]
    table = table_of(
        PackedRows.concat(blocks),
        vocab,
        counted,
        names,
        trusted,
        registry=registry_for(toa_kinds),
        warnings=warnings,
        toa_asked=bool(toa_kinds),
        rules=rules,
    )
    return table, errors + counted.undecoded.undecodable(names)


# map(function, argument tuples) -> results in order: the builtin's shape, or a cluster's
Mapper = Callable[[Callable[..., Any], list[tuple[Any, ...]]], list[Any]]


def _local_map(fn: Callable[..., Any], args: list[tuple[Any, ...]]) -> list[Any]:
    return [fn(*a) for a in args]


def read_recording(
    paths: Sequence[str],
    options: PartOptions,
    *,
    trusted: Any = None,
    mapper: Mapper = _local_map,
    chains: Sequence[str] | None = None,
    rules: Any = None,
    files_per_part: int = 1,
) -> tuple[FlowTable, list[CaptureError]]:
    """Read ``paths`` (one recording, in order) a part per task of ``mapper`` (up to
    ``files_per_part`` consecutive files each: fewer parts cut fewer connections), then
    replay and join: the table and errors of one read
    (:func:`pcapip.flows.run.read_captures`).

    ``chains``: one label per path; files of different labels (different vantage points,
    e.g. ``--group-by-dir``) are different recordings, whose connections are never joined.
    """
    labels = list(chains) if chains is not None else [""] * len(paths)
    spans = _spans(labels, max(1, files_per_part))
    parts: list[Part] = mapper(read_part, [(list(paths[a:b]), a, options) for a, b in spans])
    chains_of: dict[str, list[Part]] = {}  # label -> its parts, in recording order
    for p, (a, _) in zip(parts, spans, strict=True):
        chains_of.setdefault(labels[a], []).append(p)
    cut: dict[int, np.ndarray] = {}
    for mine in chains_of.values():
        keys = replayed_groups(mine)
        if keys.size:
            cut.update((p.number, keys) for p in mine if np.isin(p.groups, keys).any())
    files = _files_to_take(parts, cut)
    taken = mapper(
        take_frames,
        [
            (name, cut[p.number], r, options, [runs.start_of(a) for a, _ in r])
            for p, _, name, runs, r in files
        ],
    )
    replayed = []
    for label, mine in chains_of.items():
        order = [
            (number, b)
            for (p, number, _, _, _), bs in zip(files, taken, strict=True)
            if labels[number] == label
            for b in bs
        ]
        if order:
            last = next((p.now for p in reversed(mine) if p.now is not None), None)
            replayed.append(replay(order, last, options))
    return join(
        parts, replayed, cut, trusted=trusted, toa_kinds=options.toa_kinds, rules=rules,
        labels=labels,
    )


def _spans(labels: Sequence[str], most: int) -> list[tuple[int, int]]:
    """The parts: (first, end) file positions, consecutive files of one label, ``most`` at
    most."""
    spans: list[tuple[int, int]] = []
    for k, label in enumerate(labels):
        if spans and labels[spans[-1][0]] == label and k - spans[-1][0] < most:
            spans[-1] = (spans[-1][0], k + 1)
        else:
            spans.append((k, k + 1))
    return spans


def _files_to_take(
    parts: Sequence[Part], cut: dict[int, np.ndarray]
) -> list[tuple[Part, int, str, FrameIndex, list[tuple[int, int]]]]:
    """The files holding frames of the cut connections, in recording order: (their part,
    their number, name, frame index, runs to read)."""
    out = []
    for p in parts:
        keys = cut.get(p.number)
        if keys is None:
            continue
        for k, (name, runs) in enumerate(zip(p.names, p.runs, strict=True)):
            r = runs.runs_with(keys)
            if r:
                out.append((p, p.number + k, name, runs, r))
    return out
