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


class Piece:
    """One cell's bytes per row: ``mat`` (rows or 1, width) uint8, of which ``used`` bytes
    count (an int for every row, or one per row), from the left, or from the right when
    ``right``."""

    __slots__ = ("mat", "used", "right")

    def __init__(self, mat: np.ndarray, used: Any, right: bool = False) -> None:
        self.mat, self.used, self.right = mat, used, right

    def keep(self, out: np.ndarray) -> None:
        """Write which bytes count into ``out`` ((rows, width) bool)."""
        used = self.used
        w = self.mat.shape[1]
        if not isinstance(used, int) and used.size and used.min() == used.max():
            used = int(used[0])
        if isinstance(used, int):  # the same on every row: two fills
            cut = w - used if self.right else used
            out[:, :cut] = not self.right
            out[:, cut:] = self.right
        elif self.right:
            np.greater_equal(np.arange(w), (w - used)[:, None], out=out)
        else:
            np.less(np.arange(w), used[:, None], out=out)

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


def table(texts: Sequence[bytes]) -> np.ndarray:
    """Encoded texts, for :func:`gather`."""
    out = np.empty(len(texts), dtype=object)
    out[:] = list(texts)
    return out


def gather(tab: np.ndarray, codes: np.ndarray) -> Piece:
    """The encoded texts of ``codes`` (indices into :func:`table`'s texts)."""
    if codes.size == 0:
        return Piece(np.zeros((0, 1), dtype=np.uint8), 0)
    u, inv = np.unique(codes, return_inverse=True)
    words = tab[u]
    lens = np.fromiter(map(len, words), dtype=np.intp, count=u.size)
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
    ``n`` lines (the pieces say where each ends)."""
    pieces = [p for p in pieces if not p.empty()]
    width = sum(p.mat.shape[1] for p in pieces)
    mat = np.empty((n, width), dtype=np.uint8)
    keep = np.empty((n, width), dtype=bool)
    at = 0
    for p in pieces:
        w = p.mat.shape[1]
        mat[:, at : at + w] = p.mat
        p.keep(keep[:, at : at + w])
        at += w
    return np.compress(keep.ravel(), mat.ravel()).tobytes()
