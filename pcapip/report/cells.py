"""The text of many rows at once, built as byte matrices rather than a string per cell.

A flood's table has millions of rows; formatting them cell by cell in Python costs
more than reading the capture. Here a slice of one column becomes ``Piece``s: a
uint8 matrix (one padded row of bytes per table row) and how many bytes of each
row count, from the left or from the right. The pieces of a line side by side,
with only the counted bytes kept, are the text of every line at once. Numbers
are spelled three digits at a time from a table, texts are encoded once each and
gathered by code: nothing runs per cell in Python, and nothing beyond numpy is
imported (a 10-packet capture's CSV pays no start-up).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# three decimal digits of 0..999 in the first three bytes of a uint32
_DIGITS3 = np.frombuffer(
    b"".join(f"{k:03d}".encode() + b"\0" for k in range(1000)), dtype=np.uint32
).copy()
_POW10 = [10**k for k in range(1, 19)]
_PADDED_MAX = 1 << 24  # bytes of a padded text table; above, gather sorts the codes


class Piece:
    """One cell's bytes per row: ``mat`` (rows or 1, width) uint8, of which ``used`` bytes
    count (an int for every row, or one per row), from the left, or from the right when
    ``right``."""

    __slots__ = ("mat", "used", "right")

    def __init__(self, mat: np.ndarray, used: Any, right: bool = False) -> None:
        self.mat, self.used, self.right = mat, used, right

    def only(self, rows: np.ndarray) -> Piece:
        """The same bytes on ``rows`` (a bool mask), nothing on the other rows."""
        return Piece(self.mat, np.where(rows, self.used, 0), self.right)

    def empty(self) -> bool:
        return not np.any(self.used)


def const(text: str) -> Piece:
    """The same text on every row."""
    b = text.encode()
    return Piece(np.frombuffer(b, dtype=np.uint8).reshape(1, -1), len(b))


def digits(values: np.ndarray, width: int = 0) -> list[Piece]:
    """Integers in decimal (a '-' before negative ones), as pieces; ``width``: zero-padded
    to that many digits."""
    v = values.astype(np.int64)
    neg = v < 0
    has_neg = bool(neg.any())
    if has_neg:
        v = np.abs(v)
    top = int(v.max()) if v.size else 0
    nd = max(width, len(str(top)))
    groups = -(-nd // 3)
    mat = np.empty((v.size, groups * 3), dtype=np.uint8)
    for g in range(groups - 1, -1, -1):
        if g:
            v, r = np.divmod(v, 1000)
        else:
            r = v
        mat[:, g * 3 : g * 3 + 3] = _DIGITS3[r].view(np.uint8).reshape(-1, 4)[:, :3]
    if width:
        used: Any = width
    else:
        used = np.ones(values.size, dtype=np.intp)
        w = np.abs(values) if has_neg else values
        for p in _POW10[: nd - 1]:
            used += w >= p
    out = [Piece(mat, used, right=True)]
    if has_neg:
        out.insert(0, Piece(const("-").mat, neg.astype(np.intp)))
    return out


class Words:
    """Encoded texts, for :func:`gather`: also as one padded matrix when that is small,
    so a slice's codes index it directly (no sort of the codes)."""

    __slots__ = ("objs", "lens", "mat")

    def __init__(self, texts: Sequence[bytes]) -> None:
        self.objs = np.empty(len(texts), dtype=object)
        self.objs[:] = list(texts)
        self.lens = np.fromiter(map(len, texts), dtype=np.intp, count=len(texts))
        w = max(int(self.lens.max()), 1) if len(texts) else 1
        self.mat = None
        if len(texts) * w <= _PADDED_MAX:
            self.mat = np.frombuffer(self.objs.astype(f"S{w}").tobytes(), dtype=np.uint8)
            self.mat = self.mat.reshape(len(texts), w)

    def __len__(self) -> int:
        return self.objs.size


def table(texts: Sequence[bytes]) -> Words:
    """Encoded texts, for :func:`gather`."""
    return Words(texts)


def gather(tab: Words, codes: np.ndarray) -> Piece:
    """The encoded texts of ``codes`` (indices into :func:`table`'s texts)."""
    if codes.size == 0:
        return Piece(np.zeros((0, 1), dtype=np.uint8), 0)
    if tab.mat is not None:
        lens = tab.lens[codes]
        w = max(int(lens.max()), 1)
        return Piece(tab.mat[:, :w][codes], lens)
    u, inv = np.unique(codes, return_inverse=True)
    words = tab.objs[u]
    lens = tab.lens[u]
    w = max(int(lens.max()), 1)
    mat = np.frombuffer(words.astype(f"S{w}").tobytes(), dtype=np.uint8).reshape(u.size, w)
    return Piece(mat[inv], lens[inv])


def spelled(items: Sequence[Any], spell: Callable[[Any], str]) -> Piece:
    """Any Python values, each distinct one spelled once by ``spell``."""
    known: dict[Any, int] = {}
    words: list[bytes] = []
    codes = np.empty(len(items), dtype=np.int64)
    for k, v in enumerate(items):
        try:
            key: Any = (type(v), v)  # (1, 1.0 and True spell differently)
            c = known.get(key)
        except TypeError:  # unhashable: spelled on its own
            key, c = None, None
        if c is None:
            c = len(words)
            words.append(spell(v).encode())
            if key is not None:
                known[key] = c
        codes[k] = c
    return gather(table(words), codes)


def lines(pieces: Sequence[Piece], n: int) -> bytes:
    """The ``n`` rows' pieces side by side, only the counted bytes: the text (UTF-8) of
    ``n`` lines (the pieces say where each ends).

    Which bytes count is one comparison over the whole matrix: each byte's place in its
    piece against its piece's count on that row (the counts repeated across the piece's
    width), flipped where a piece counts from the right; not one strided fill per piece."""
    pieces = [p for p in pieces if not p.empty()]
    widths = [p.mat.shape[1] for p in pieces]
    width = sum(widths)
    small = np.uint8 if max(widths, default=0) < 256 else np.int32
    mat = np.empty((n, width), dtype=np.uint8)
    count = np.empty((n, len(pieces)), dtype=small)
    place = np.empty(width, dtype=small)
    flip = np.zeros(width, dtype=bool)
    at = 0
    for k, p in enumerate(pieces):
        w = widths[k]
        mat[:, at : at + w] = p.mat
        place[at : at + w] = np.arange(w)
        if p.right:  # the last ``used`` bytes: place >= w - used, i.e. not place < w - used
            flip[at : at + w] = True
            count[:, k] = w - p.used
        else:
            count[:, k] = p.used
        at += w
    keep = place < np.repeat(count, widths, axis=1)
    keep ^= flip
    return np.compress(keep.ravel(), mat.ravel()).tobytes()
