"""A log read line by line through one compiled pattern: the records' fields in log order,
and every line that did not fit counted, the first few kept with their line numbers."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pcapip.errors import UsageError

#: unreadable lines quoted in the report (all are counted)
EXAMPLES = 5


@dataclass
class Parsed:
    """A log's records: ``fields`` (name -> one value per record, None for empty) and the
    1-based line number of each; ``bad`` counts lines that are no record, ``examples``
    quotes the first few as (line number, why, text)."""

    fields: dict[str, list[str | None]]
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
            rest, text = text[cut + 1:], text[:cut].replace("\r\n", "\n")
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


def _all_records(cells: list[tuple[str, ...]]) -> bool:
    """Whether every line of a chunk is a record, told from its columns without a loop
    over the lines: none is unfit (the last column is all empty) and some group is never
    empty (so no line is blank)."""
    return not any(cells[-1]) and any("" not in c for c in cells[:-1])


def by_pattern(chunks: Iterable[tuple[int, str]], rx: re.Pattern[str], names: list[str]) -> Parsed:
    """Each line matched whole by ``rx`` (one group per name), values kept as written (a
    field the line leaves out is empty). Blank lines are no record. A chunk of lines goes
    through one ``findall`` (a busy log has millions of lines)."""
    whole = line_pattern(rx)
    out = Parsed({name: [] for name in names}, [])
    columns = list(out.fields.values())
    for first, text in chunks:
        found = whole.findall(text)
        cells = list(zip(*found, strict=True))  # a tuple per group, the last one the unfit lines
        if found and _all_records(cells):
            out.line_numbers += range(first, first + len(found))
        else:
            # a record: it fit (last group empty) and is not a blank line (every group empty)
            keep = [i for i, r in enumerate(found) if not r[-1] and any(r)]
            for i, r in enumerate(found):
                if r[-1].strip():
                    out.reject(first + i, "does not fit the log format", r[-1])
            cells = list(zip(*(found[i] for i in keep), strict=True)) if len(keep) < len(found) else cells
            out.line_numbers += [first + i for i in keep]
        # the last group (the unfit line) has no column; the chunk's tuples are let go
        for column, values in zip(columns, cells, strict=False):
            column += values
    return out
