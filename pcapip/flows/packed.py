"""Finished flow rows, held as numpy columns until the table is built.

``pcapip analyze`` prints one table in order of each flow's first packet and
compares flows with each other, so every row waits for the end of the
capture. Held as Python objects a row costs ~1.6 KB (address text, boxed
integers, lists of tuples); held here it costs ~200 bytes, so a capture's
memory is its open connections plus this, not its length. Text is kept as
codes into one :class:`Vocab` shared by every block of a tracker, IPv4
addresses as their integer value.
"""

from __future__ import annotations

import _socket as socket  # (the C module: inet_ntop/aton without socket.py's import cost)
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pcapip.flows.store import DiskStore, MemStore

if TYPE_CHECKING:
    from pcapip.flows.rowblock import RowBlock
    from pcapip.flows.rows import FlowRow

NULL = np.iinfo(np.int64).min  # a missing integer
NO_IP = -1  # a missing address; -(2 + k) is the address text ``vocab.texts[k]``

INT_COLS = (
    "capture",
    "first_frame",
    "start_ns",
    "end_ns",
    "egress_port",
    "origin_port",
    "client_port",
    "proxy_port",
    "packets",
    "bytes",
    "toa_kind",
)
IP_COLS = ("egress_ip", "origin_ip", "client_ip", "proxy_ip")
TEXT_COLS = ("transport", "method", "pp_command", "pp_family", "tlvs", "status", "tunnel")
BOOL_COLS = ("spoke", "carries_client", "toa_carried", "hs_done", "hs_toa", "toa_in_syn")
PAIR_COLS = ("no_room", "header_frame")  # (capture, frame) or None


def dotted(values: np.ndarray) -> list[str]:
    """IPv4 addresses (integers) as dotted text."""
    octets = [((values >> sh) & 255).tolist() for sh in (24, 16, 8, 0)]
    return [f"{a}.{b}.{c}.{d}" for a, b, c, d in zip(*octets, strict=True)]


def v4_text(values: np.ndarray) -> list[str]:
    """IPv4 addresses (integers) as dotted text, each distinct address formatted once."""
    if values.size == 0:
        return []
    uniq, inv = np.unique(values, return_inverse=True)
    if uniq.size * 2 > values.size:  # mostly distinct: no point in sharing
        return dotted(values)
    return np.asarray(dotted(uniq), dtype=object)[inv].tolist()


def distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values (``np.unique`` without its import of ``numpy.ma``, ~20 ms
    on first use)."""
    if values.size == 0:
        return values.copy()
    s = np.sort(values)
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


class Vocab:
    """Distinct texts, each stored once, numbered in order of first use."""

    __slots__ = ("texts", "codes", "_table")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.codes: dict[str, int] = {}
        self._table: np.ndarray | None = None  # texts as an object array, None last

    def code(self, text: str) -> int:
        c = self.codes.get(text)
        if c is None:
            c = self.codes[text] = len(self.texts)
            self.texts.append(text)
        return c

    def encode(self, values: Sequence[str | None]) -> np.ndarray:
        """int32 codes, -1 for None."""
        lookup = {v: (-1 if v is None else self.code(v)) for v in set(values)}
        return np.fromiter(map(lookup.__getitem__, values), dtype=np.int32, count=len(values))

    def decode(self, codes: np.ndarray) -> list[str | None]:
        """Texts for codes (None for -1), each distinct text shared, not copied."""
        table = self._table
        if table is None or table.size != len(self.texts) + 1:
            table = self._table = np.asarray([*self.texts, None], dtype=object)
        return table[codes].tolist()

    # ---- addresses
    def ip_encode(self, values: Sequence[str | None]) -> np.ndarray:
        """int64 address codes: the IPv4 value when the text is its dotted form, NO_IP for
        None, else -(2 + the text's code) (IPv6, or any text that must be kept as it is)."""
        known = {v: self.ip_code(v) for v in set(values)}
        return np.fromiter(map(known.__getitem__, values), dtype=np.int64, count=len(values))

    def ip_code(self, text: str | None) -> int:
        """The address code of one text (see :meth:`ip_encode`)."""
        if text is None:
            return NO_IP
        c = _v4_value(text)
        return c if c >= 0 else -2 - self.code(text)

    def ip_from_halves(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Address codes for (hi, lo) halves (int64 bit patterns; IPv4 stored IPv4-mapped)."""
        from pcapip.flows.rows import ip_text

        uhi = hi.view(np.uint64)
        ulo = lo.view(np.uint64)
        v4 = (uhi == 0) & ((ulo >> np.uint64(32)) == np.uint64(0xFFFF))
        out = (ulo & np.uint64(0xFFFFFFFF)).astype(np.int64)
        if not v4.all():
            for k in np.flatnonzero(~v4).tolist():
                out[k] = -2 - self.code(ip_text(int(uhi[k]), int(ulo[k])))
        return out

    def ip_decode(self, codes: np.ndarray) -> list[str | None]:
        """Address text for address codes (None for NO_IP)."""
        if codes.size == 0:
            return []
        if (codes >= 0).all():
            return v4_text(codes)
        uniq, inv = np.unique(codes, return_inverse=True)
        texts = self.texts
        v4 = uniq >= 0
        names: list[str | None] = [None] * uniq.size
        for k, t in zip(np.flatnonzero(v4).tolist(), dotted(uniq[v4]), strict=True):
            names[k] = t
        for k in np.flatnonzero(uniq < NO_IP).tolist():
            names[k] = texts[-2 - int(uniq[k])]
        return np.asarray(names, dtype=object)[inv].tolist()


def _v4_value(text: str) -> int:
    """The address of canonical dotted IPv4 text, else -1."""
    try:
        packed = socket.inet_aton(text)
    except (OSError, TypeError, ValueError):
        return -1
    if socket.inet_ntoa(packed) != text:
        return -1
    return int.from_bytes(packed, "big")


def _ints(values: Sequence[int | None]) -> np.ndarray:
    if None in values:
        values = [NULL if v is None else v for v in values]
    return np.array(values, dtype=np.int64)


def ints_out(values: np.ndarray) -> list[int | None]:
    """Integers back as Python values, None where missing."""
    out = values.tolist()
    if values.size and (values == NULL).any():
        return [None if v == NULL else v for v in out]
    return out


Store = MemStore | DiskStore


class PackedRows:
    """Flow rows as numpy columns (see the module docstring for the encodings).

    ``cols`` (in memory or on disk) has one array per row field: INT_COLS
    (NULL for None), IP_COLS (address codes), TEXT_COLS (vocabulary codes),
    BOOL_COLS, and for each PAIR_COLS name ``<name>_cap`` and ``<name>_frame``
    (NULL for None); the packets that carried the client address are
    ``hf_len`` (per row) and the flat ``hf_cap``/``hf_frame``; findings are the
    flat ``f_row`` (the row each belongs to), ``f_code``, ``f_msg``, ``f_frame``
    and ``f_cap``, each row's in the order noted.
    """

    __slots__ = ("cols",)

    def __init__(self, cols: Store) -> None:
        self.cols = cols

    def __len__(self) -> int:
        return self.cols.size("capture")

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (the vocabulary is shared, not counted)."""
        return self.cols.nbytes

    @classmethod
    def pack(cls, block: RowBlock, vocab: Vocab) -> PackedRows:
        """Pack a RowBlock. Its columns may already be arrays: numbers (NULL for None),
        flags, addresses and texts as codes of ``vocab``, the (capture, frame) columns as a
        pair of arrays and ``header_frames`` as (per-row counts, captures, frames)."""
        c = block.cols
        cols = MemStore()
        for n in INT_COLS:
            v = c[n]
            # (a copy: a column view would keep the whole matrix it came from alive)
            cols[n] = np.array(v, dtype=np.int64) if isinstance(v, np.ndarray) else _ints(v)
        for n in IP_COLS:
            v = c[n]
            cols[n] = v if isinstance(v, np.ndarray) else vocab.ip_encode(v)
        for n in TEXT_COLS:
            v = c[n]
            cols[n] = v if isinstance(v, np.ndarray) else vocab.encode(v)
        for n in BOOL_COLS:
            cols[n] = np.array(c[n], dtype=bool)
        for n in PAIR_COLS:
            v = c[n]
            if isinstance(v, tuple):  # (captures, frames) arrays
                cols[f"{n}_cap"], cols[f"{n}_frame"] = (np.array(x, dtype=np.int64) for x in v)
            else:
                cols[f"{n}_cap"] = _ints([None if p is None else p[0] for p in v])
                cols[f"{n}_frame"] = _ints([None if p is None else p[1] for p in v])
        frames = c["header_frames"]
        if isinstance(frames, tuple):  # (per-row counts, flat captures, flat frames) arrays
            lens, caps, fr = frames
            cols["hf_len"] = np.array(lens, dtype=np.int32)
            cols["hf_cap"] = np.array(caps, dtype=np.int64)
            cols["hf_frame"] = np.array(fr, dtype=np.int64)
        else:
            cols["hf_len"] = np.fromiter(map(len, frames), dtype=np.int32, count=len(frames))
            flat = list(itertools.chain.from_iterable(frames))
            cols["hf_cap"] = np.array([p[0] for p in flat], dtype=np.int64)
            cols["hf_frame"] = np.array([p[1] for p in flat], dtype=np.int64)
        cols["f_row"] = np.array(block.f_row, dtype=np.int64)
        cols["f_code"] = vocab.encode(block.f_code)
        cols["f_msg"] = vocab.encode(block.f_msg)
        cols["f_frame"] = _ints(block.f_frame)
        cols["f_cap"] = np.array(block.f_capture, dtype=np.int64)
        return cls(cols)

    @classmethod
    def from_rows(cls, rows: Sequence[FlowRow], vocab: Vocab) -> PackedRows:
        from pcapip.flows.rowblock import RowBlock

        return cls.pack(RowBlock.from_rows(rows), vocab)

    @classmethod
    def concat(cls, parts: Sequence[PackedRows]) -> PackedRows:
        """One block of all rows: on disk if any part is (the others are added to it)."""
        if not parts:
            return cls.empty()
        disk = [p for p in parts if p.cols.on_disk]
        if len(parts) == 1:
            return parts[0]
        if disk:
            target = disk[0]
            store = target.cols
            assert isinstance(store, DiskStore)
            for p in parts:
                if p is not target:
                    spill(store, p)
            return target
        names = list(parts[0].cols)
        base = np.cumsum([0] + [len(p) for p in parts[:-1]]).tolist()
        cols = MemStore()
        for n in names:
            if n == "f_row":
                cols[n] = np.concatenate([p.cols[n] + b for p, b in zip(parts, base, strict=True)])
            else:
                cols[n] = np.concatenate([p.cols[n] for p in parts])
        return cls(cols)

    @classmethod
    def empty(cls) -> PackedRows:
        from pcapip.flows.rowblock import RowBlock

        return cls.pack(RowBlock(), Vocab())

    def header_frames(self, lo: int = 0, hi: int | None = None) -> list[list[tuple[int, int]]]:
        """Rows ``lo:hi``'s packets that carried the client address, as (capture, frame) lists."""
        lens = self.cols["hf_len"]
        off = np.zeros(lens.size + 1, dtype=np.int64)
        np.cumsum(lens, out=off[1:])
        hi = len(self) if hi is None else hi
        a, b = int(off[lo]), int(off[hi])
        pairs = list(
            zip(
                self.cols.slice("hf_cap", a, b).tolist(),
                self.cols.slice("hf_frame", a, b).tolist(),
                strict=True,
            )
        )
        o = (off[lo : hi + 1] - a).tolist()
        return [pairs[o[k] : o[k + 1]] for k in range(hi - lo)]

    def to_rows(self, vocab: Vocab) -> list[FlowRow]:
        """The rows back as FlowRows of Python values (findings as Finding objects)."""
        from pcapip.flows.rowblock import RowBlock

        c = self.cols
        out: dict[str, list[Any]] = {}
        for n in INT_COLS:
            out[n] = ints_out(c[n])
        for n in IP_COLS:
            out[n] = vocab.ip_decode(c[n])
        for n in TEXT_COLS:
            out[n] = vocab.decode(c[n])
        for n in BOOL_COLS:
            out[n] = c[n].tolist()
        for n in PAIR_COLS:
            caps, frames = ints_out(c[f"{n}_cap"]), c[f"{n}_frame"].tolist()
            out[n] = [
                None if cap is None else (cap, fr) for cap, fr in zip(caps, frames, strict=True)
            ]
        out["header_frames"] = self.header_frames()
        b = RowBlock(out)
        b.f_row = c["f_row"].tolist()
        b.f_code = vocab.decode(c["f_code"])  # type: ignore[assignment]
        b.f_msg = vocab.decode(c["f_msg"])  # type: ignore[assignment]
        b.f_frame = ints_out(c["f_frame"])
        b.f_capture = c["f_cap"].tolist()
        return b.to_rows()


def spill(store: DiskStore, part: PackedRows) -> None:
    """Append ``part``'s rows to the rows already in ``store``."""
    base = store.size("capture") if "capture" in store else 0
    for n in part.cols:
        v = part.cols[n]
        store.append(n, v + base if n == "f_row" else v)
