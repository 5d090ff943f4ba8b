"""Writing an Analysis as ``pcapip analyze`` writes it, in every output format.

Sits above ``analysis``, ``export`` and ``render``: the per-flow CSV / TSV / JSON Lines
come from ``export``'s writers over the table, the terminal report from ``render``,
Parquet and the ``--by`` summaries from the Analysis. A file that cannot be written is
one PcapipError line, and a closed standard output (``| head``) is a BrokenPipeError for
every format, the table included (``pcapip.cli.main`` exits 0 on it).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

from pcapip.errors import PcapipError
from pcapip.report.atomic import atomic_path
from pcapip.report.export import tsv_lines, write_csv, write_jsonl, write_tsv
from pcapip.report.formats import FORMATS

__all__ = ["stdout_console", "write_analysis"]


def _csv_to_tsv(text: str, fh: IO[str]) -> None:
    """A summary frame's CSV (``--by egress|client``) as TSV, cell for cell."""
    import csv  # only these summaries read CSV back

    tsv_lines(csv.reader(io.StringIO(text)), fh)


def stdout_console(**kwargs: Any) -> Any:
    """A Rich Console on standard output for which a reader closing the pipe (``| head``)
    raises BrokenPipeError instead of Rich's ``SystemExit(1)``: 1 means findings."""
    from rich.console import Console

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return PipeConsole(**kwargs)


@contextlib.contextmanager
def _writing(output: str | os.PathLike[str]) -> Iterator[None]:
    """An output file that cannot be written is one line (exit 2), never a traceback."""
    try:
        yield
    except OSError as exc:
        raise PcapipError(f"cannot write {os.fspath(output)}: {exc.strerror or exc}") from None


def write_analysis(
    result: Any,
    fmt: str,
    output: str | os.PathLike[str] | None = None,
    *,
    by: str = "flow",
    max_rows: int = 500,
    explain: bool = False,
    force: bool = False,
) -> None:
    """Write an analysis as ``pcapip analyze`` writes it (``pcapip live`` writes its summary
    the same way).

    ``result`` is an Analysis (``pcapip.analyze``); the per-flow CSV / TSV / JSON Lines are
    written from its table (its ``selection`` only), so they need neither pandas nor the
    frames. ``fmt`` is one of FORMATS; ``output`` None or "-" means standard output. A
    file that cannot be written raises PcapipError (one line).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if output is None or output == "-":
        _write(result, fmt, None, by, max_rows, explain)
        return
    from pcapip.report.dataset import is_dataset_target

    with _writing(output):
        if fmt == "parquet" and is_dataset_target(output):
            _write(result, fmt, output, by, max_rows, explain)
            return
        with atomic_path(output, force=force) as tmp:  # whole or not at all
            _write(result, fmt, tmp, by, max_rows, explain)


def _write(
    result: Any,
    fmt: str,
    output: str | os.PathLike[str] | None,
    by: str,
    max_rows: int,
    explain: bool,
) -> None:
    if fmt in ("csv", "tsv", "json") and by == "flow":
        write = {"csv": write_csv, "tsv": write_tsv, "json": write_jsonl}[fmt]
        if output is None:
            write(result.table, sys.stdout, result.selection)
            sys.stdout.flush()
        else:
            with open(output, "w", encoding="utf-8", newline="") as fh:
                write(result.table, fh, result.selection)
        return
    if fmt == "table":
        _write_table(result, output, by, max_rows, explain)
    elif fmt == "parquet":
        from pcapip.report.dataset import is_dataset_target, write_dataset

        if is_dataset_target(output) and by == "flow":
            assert output is not None
            write_dataset(result, output)
        elif output is None:
            buf = io.BytesIO()
            result.to_parquet(buf, by=by)
            sys.stdout.buffer.write(buf.getvalue())
            sys.stdout.buffer.flush()
        else:  # (opened here: pyarrow takes only names that are valid UTF-8)
            with open(output, "wb") as fh:
                result.to_parquet(fh, by=by)
    else:
        text = result.to_jsonl(by=by) if fmt == "json" else result.to_csv(by=by)
        with contextlib.ExitStack() as stack:
            fh = sys.stdout
            if output is not None:
                fh = stack.enter_context(open(output, "w", encoding="utf-8", newline=""))
            if fmt == "tsv":
                _csv_to_tsv(text or "", fh)
            else:
                fh.write(text or "")
            fh.flush()


def _write_table(
    result: Any, output: str | os.PathLike[str] | None, by: str, max_rows: int, explain: bool
) -> None:
    from rich.console import Console

    from pcapip.report.render import print_report

    if output is None:
        # a pipe has no width: a wide fixed layout, unless COLUMNS says how wide the reader is
        wide = sys.stdout.isatty() or os.environ.get("COLUMNS")
        console = stdout_console() if wide else stdout_console(width=160)
        print_report(result, console, by=by, max_rows=max_rows, explain=explain)
    else:
        with open(output, "w", encoding="utf-8") as fh:
            console = Console(file=fh, width=200, no_color=True)
            print_report(result, console, by=by, max_rows=max_rows, explain=explain)
