"""A log read line by line through one compiled pattern: the records' fields in log order,
and every line that did not fit counted, the first few kept with their line numbers."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pcapip.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

#: unreadable lines quoted in the report (all are counted)
EXAMPLES = 5


@dataclass
class Parsed:
    """A log's records: ``fields`` (name -> one value per record, None for empty) and the
    1-based line number of each; ``bad`` counts lines that are no record, ``examples``
    quotes the first few as (line number, why, text)."""

    fields: MutableMapping[str, list[str | None]]
    line_numbers: list[int]
    bad: int = 0
    examples: list[tuple[int, str, str]] = field(default_factory=list)

    def reject(self, number: int, why: str, text: str) -> None:
        self.bad += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append((number, why, text[:200]))

    def __len__(self) -> int:
        return len(self.line_numbers)


def read_chunks(path: str, size: int = 1 << 23) -> Iterator[tuple[int, str]]:
    """(number of the first line, whole lines joined by ``\\n``, no final newline) of a log
    file, about ``size`` bytes at a time; ``-`` is stdin, ``.gz`` read through gzip; CRLF
    becomes LF; undecodable bytes become U+FFFD rather than stopping the read."""
    import sys

    try:
        if path == "-":
            fh = sys.stdin
        elif path.endswith(".gz"):
            fh = gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")  # noqa: SIM115
        else:
            fh = open(path, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"--log {path}: {exc.strerror or exc}") from None
    first, rest = 1, ""
    try:
        while True:
            text = fh.read(size)
            if not text:
                break
            text = rest + text
            cut = text.rfind("\n")
            if cut < 0:
                rest = text
                continue
            rest, text = text[cut + 1:], text[:cut]
            if "\r" in text:  # (a scan for one character is cheaper than a replace)
                text = text.replace("\r\n", "\n")
            yield first, text
            first += text.count("\n") + 1
        if rest:
            yield first, rest.removesuffix("\r")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UsageError(f"--log {path}: {exc}") from None
    finally:
        if fh is not sys.stdin:
            fh.close()


def read_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, text without its newline) of a log file (see :func:`read_chunks`)."""
    for first, text in read_chunks(path):
        yield from enumerate(text.split("\n"), first)


def line_pattern(rx: re.Pattern[str]) -> re.Pattern[str]:
    """``rx`` (anchored ``^…$``, no class that crosses a newline) as one pattern for a chunk
    of lines: each line gives one tuple of ``rx``'s groups, then the whole line in a last
    group when it does not fit (empty when it does)."""
    body = rx.pattern.removeprefix("^").removesuffix("$")
    return re.compile(f"^(?:{body}|(.*))$", re.M)


class Columns(MutableMapping[str, list[Any]]):
    """The fields one pattern read, held as the rows it gave: one 2-D block of objects (a row
    per record, a column per field, then the unfit lines' column). A field becomes a list
    when asked for; the records' frame is the block itself (:meth:`frame`), not a copy per
    field: each pass over a million records' scattered strings costs a tenth of a second."""

    def __init__(self, names: list[str], blocks: list[np.ndarray]) -> None:
        self.names = list(names)
        self._blocks = blocks
        self._set: dict[str, list[Any]] = {}  # fields given anew (HAProxy's unquoted ones)

    def block(self) -> np.ndarray:
        if len(self._blocks) != 1:
            width = len(self.names) + 1
            self._blocks = [np.concatenate(self._blocks) if self._blocks
                            else np.empty((0, width), dtype=object)]
        return self._blocks[0]

    def __getitem__(self, name: str) -> list[Any]:
        if name in self._set:
            return self._set[name]
        if name not in self.names:
            raise KeyError(name)
        return self.block()[:, self.names.index(name)].tolist()

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __setitem__(self, name: str, values: list[Any]) -> None:
        if name not in self.names:
            self.names.append(name)
        self._set[name] = values

    def __delitem__(self, name: str) -> None:
        raise TypeError("a log's fields are not removed")

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def frame(self, keep: np.ndarray | None = None) -> pd.DataFrame:
        """The records (``keep``: only those) as a frame of object columns, one per field."""
        import pandas as pd

        read = [n for n in self.names if n not in self._set]
        block = self.block()[:, [self.names.index(n) for n in read]]
        if keep is not None:
            block = block[keep]
        df = pd.DataFrame(block, columns=read, dtype=object, copy=False)
        for name, values in self._set.items():
            col = pd.Series(values, dtype=object)
            df[name] = col if keep is None else col.take(keep).reset_index(drop=True)
        return df[self.names]


def _all_records(rows: np.ndarray) -> bool:
    """Whether every line of a chunk is a record, told from its columns without a loop
    over the lines: none is unfit (the last column is all empty) and some group is never
    empty (so no line is blank)."""
    if (rows[:, -1] != "").any():
        return False
    return any(not (rows[:, j] == "").any() for j in range(rows.shape[1] - 1))


def _shared(rows: np.ndarray, memos: list[dict[str, str] | None] | None,
            seen: int) -> list[dict[str, str] | None]:
    """A field that repeats (a time to the second, a status, a user agent) keeps one string
    per distinct value, not one per record: ~60 bytes a record and field less to hold, and
    to page-fault in. Chosen on the first chunk (a tenth of its rows distinct or fewer);
    given up for a field whose distinct values pass half the records seen."""
    if memos is None:
        memos = [{} if len(set(rows[:, j].tolist())) * 10 <= len(rows) else None
                 for j in range(rows.shape[1] - 1)]
    for j, memo in enumerate(memos):
        if memo is None:
            continue
        col = rows[:, j]
        rows[:, j] = list(map(memo.setdefault, col, col))
        if len(memo) * 2 > seen:
            memos[j] = None
    return memos


def by_pattern(chunks: Iterable[tuple[int, str]], rx: re.Pattern[str], names: list[str]) -> Parsed:
    """Each line matched whole by ``rx`` (one group per name), values kept as written (a
    field the line leaves out is empty). Blank lines are no record. A chunk of lines goes
    through one ``findall`` (a busy log has millions of lines), its rows kept as one block."""
    whole = line_pattern(rx)
    out = Parsed({}, [])
    blocks = []
    memos: list[dict[str, str] | None] | None = None
    for first, text in chunks:
        found = whole.findall(text)
        if not found:
            continue
        rows = np.array(found, dtype=object)  # a row per line, the last column its unfit text
        if _all_records(rows):
            out.line_numbers += range(first, first + len(found))
        else:
            # a record: it fit (last group empty) and is not a blank line (every group empty)
            keep = [i for i, r in enumerate(found) if not r[-1] and any(r)]
            for i, r in enumerate(found):
                if r[-1].strip():
                    out.reject(first + i, "does not fit the log format", r[-1])
            rows = rows[keep]
            out.line_numbers += [first + i for i in keep]
        memos = _shared(rows, memos, len(out.line_numbers))
        blocks.append(rows)  # the chunk's tuples are let go
    out.fields = Columns(names, blocks)
    return out
