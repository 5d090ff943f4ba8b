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


def read_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, text without its newline) of a log file, ``-`` for stdin, ``.gz`` read
    through gzip; undecodable bytes become U+FFFD rather than stopping the read."""
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
    try:
        for number, line in enumerate(fh, 1):
            yield number, line.rstrip("\r\n")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UsageError(f"--log {path}: {exc}") from None
    finally:
        if fh is not sys.stdin:
            fh.close()


def by_pattern(
    numbered: Iterable[tuple[int, str]], rx: re.Pattern[str], names: list[str]
) -> Parsed:
    """Each line matched whole by ``rx`` (one group per name), values kept as written (an
    empty or absent one is None). Blank lines are no record."""
    rows: list[tuple[str | None, ...]] = []
    out = Parsed({}, [])
    match = rx.match
    for number, text in numbered:
        m = match(text)
        if m is None:
            if text.strip():
                out.reject(number, "does not fit the log format", text)
            continue
        rows.append(m.groups())
        out.line_numbers.append(number)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    for name, values in zip(names, columns, strict=True):
        out.fields[name] = [v or None for v in values]
    return out
