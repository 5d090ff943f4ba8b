"""The text of many rows at once: each column a string array, the lines joined in C.

A flood's table has millions of rows; formatting them cell by cell in Python costs
more than reading the capture. Here a slice of one column becomes one Arrow string
array (numbers cast, texts encoded once each and taken by code, times and
addresses assembled from small tables), and Arrow's element-wise join puts each
line together, missing cells spelled as the format says. pyarrow is imported on
first use, so a run that writes no CSV or JSON Lines never pays for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _pa() -> tuple[Any, Any]:
    import pyarrow
    import pyarrow.compute

    return pyarrow, pyarrow.compute


def texts(items: Sequence[str]) -> Any:
    """A string array of ``items``, for :func:`take`."""
    pa, _ = _pa()
    return pa.array(items, type=pa.string())


def take(table: Any, codes: np.ndarray, missing: np.ndarray | None = None) -> Any:
    """``table[codes]`` as a string array; null where ``missing``."""
    pa, pc = _pa()
    idx = pa.array(codes, mask=missing)
    return pc.take(table, idx)


def numbers(values: np.ndarray, missing: np.ndarray | None = None) -> Any:
    """Integers in decimal; null where ``missing``."""
    pa, pc = _pa()
    return pc.cast(pa.array(values, mask=missing), pa.string())


def joined(parts: Sequence[Any]) -> Any:
    """Each row's parts (string arrays or texts) end to end (null where a part is)."""
    _, pc = _pa()
    return pc.binary_join_element_wise(*parts, "")


def either(cond: np.ndarray, a: Any, b: Any) -> Any:
    """Row by row ``a`` where ``cond``, else ``b``."""
    pa, pc = _pa()
    return pc.if_else(pa.array(cond), a, b)


def nothing(n: int) -> Any:
    """``n`` missing cells."""
    pa, _ = _pa()
    return pa.nulls(n, pa.string())


def decimals(count: int, width: int, before: str = "", after: str = "") -> Any:
    """The texts of 0..count-1 zero-padded to ``width`` digits (``width`` 0: not padded),
    between ``before`` and ``after``, then an empty text (index ``count``: for a cell whose
    first part spells it missing)."""
    pa, pc = _pa()
    t = pc.cast(pa.array(np.arange(count)), pa.string())
    if width:
        t = pc.utf8_lpad(t, width, "0")
    return and_empty(pc.binary_join_element_wise(before, t, after, ""))


def and_empty(table: Any) -> Any:
    """``table`` and an empty text after it."""
    pa, _ = _pa()
    return pa.concat_arrays([table, pa.array([""], type=pa.string())])


def spelled(items: Sequence[Any], spell: Callable[[Any], str]) -> Any:
    """Any Python values, each distinct one spelled once by ``spell``."""
    known: dict[Any, int] = {}
    words: list[str] = []
    codes = np.empty(len(items), dtype=np.int64)
    for k, v in enumerate(items):
        try:
            key: Any = (type(v), v)  # (1, 1.0 and True spell differently)
            c = known.get(key)
        except TypeError:  # unhashable: spelled on its own
            key, c = None, None
        if c is None:
            c = len(words)
            words.append(spell(v))
            if key is not None:
                known[key] = c
        codes[k] = c
    return take(texts(words), codes)


def lines(parts: Sequence[Any], sep: str, null: str, end: str) -> bytes:
    """The text (UTF-8) of the lines made of ``parts`` (string arrays of equal length, or
    texts repeated on every line) between ``sep``, each missing part spelled ``null``,
    each line ended by ``end``."""
    _, pc = _pa()
    out = pc.binary_join_element_wise(*parts, sep, null_handling="replace", null_replacement=null)
    out = pc.binary_join_element_wise(out, end, "")
    offsets = np.frombuffer(out.buffers()[1], dtype=np.int32)
    a, b = int(offsets[out.offset]), int(offsets[out.offset + len(out)])
    return memoryview(out.buffers()[2])[a:b].tobytes()
