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


def read_chunks(path: str, size: int = 1 << 23) -> Iterator[tuple[int, list[str]]]:
    """(number of the first line, lines without their newlines) of a log file, about
    ``size`` bytes at a time; ``-`` is stdin, ``.gz`` read through gzip; undecodable bytes
    become U+FFFD rather than stopping the read."""
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
            rest = text[cut + 1:]
            lines = text[:cut].split("\n")
            if "\r" in text:
                lines = [line.rstrip("\r") for line in lines]
            yield first, lines
            first += len(lines)
        if rest:
            yield first, [rest.rstrip("\r")]
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UsageError(f"--log {path}: {exc}") from None
    finally:
        if fh is not sys.stdin:
            fh.close()


def read_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, text without its newline) of a log file (see :func:`read_chunks`)."""
    for first, lines in read_chunks(path):
        yield from enumerate(lines, first)


def by_pattern(
    chunks: Iterable[tuple[int, list[str]]], rx: re.Pattern[str], names: list[str]
) -> Parsed:
    """Each line matched whole by ``rx`` (one group per name), values kept as written (a
    field the line leaves out is None). Blank lines are no record. The lines of a chunk go
    through the pattern in one ``map`` (a busy log has millions)."""
    rows: list[tuple[str | None, ...]] = []
    out = Parsed({}, [])
    for first, lines in chunks:
        found = list(map(rx.match, lines))
        rows += [m.groups() for m in found if m is not None]
        out.line_numbers += [first + i for i, m in enumerate(found) if m is not None]
        for i in [i for i, m in enumerate(found) if m is None]:
            if lines[i].strip():
                out.reject(first + i, "does not fit the log format", lines[i])
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    for name, values in zip(names, columns, strict=True):
        out.fields[name] = list(values)
    return out
