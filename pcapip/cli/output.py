"""Where a command writes, checked before any work: a 5 GB capture is not read only to
fail at the end because ``-o`` names a missing directory.

Every path a command writes (``analyze -o``, ``live -o``/``-w``, ``wireshark-plugin -o``)
goes through :func:`check_output`; every capture it reads through :func:`check_input`.
The format an output file gets is :func:`pick_format`'s choice, from one table of
extensions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from pcapip.errors import UsageError
from pcapip.report.formats import EXTENSIONS, FORMATS

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "check_analysis_output",
    "check_input",
    "check_output",
    "extension_format",
]


def to_stdout(path: str | None) -> bool:
    return path is None or path == "-"


def check_output(
    path: str | None, option: str = "-o", force: bool = False, reads: Sequence[str] = ()
) -> None:
    """Refuse (UsageError, exit 2) an output file that cannot be created or overwritten,
    or that is one of the files the command ``reads`` (even with --force).

    Checks what fails for root too (a missing directory, a directory given as the file,
    a parent that is a file, a read-only file system), not only permission bits.
    """
    if to_stdout(path):
        return
    assert path is not None
    from pcapip.report.atomic import refuse_link

    refuse_link(path, option, force)
    what = f"{option} {path}"
    _refuse_input(what, path, reads)
    if path.endswith(os.sep) or os.path.isdir(path):
        hint = (" (analyze --format parquet -o DIR/ writes a partitioned dataset into a folder)"
                if option == "-o" else "")
        raise UsageError(f"{what}: is a directory, not a file{hint}")
    parent = os.path.dirname(path) or "."
    if not os.path.exists(parent):
        up = parent
        while up and not os.path.exists(up):
            up = os.path.dirname(up)
        if up and not os.path.isdir(up):
            raise UsageError(f"{what}: {up} is not a directory")
        raise UsageError(f"{what}: directory {parent} does not exist")
    if not os.path.isdir(parent):
        raise UsageError(f"{what}: {parent} is not a directory")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise UsageError(f"{what}: not writable")
        if os.path.isfile(path):
            _probe(what, lambda: os.open(path, os.O_WRONLY | os.O_APPEND))
        return
    _probe(what, lambda: os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    os.unlink(path)  # created only to prove it can be: the real write comes after the work


def _refuse_input(what: str, path: str, reads: Sequence[str]) -> None:
    """The output would replace a file the command reads: its input would be lost."""
    if not os.path.isfile(path):
        return
    for name in reads:
        try:
            same = name != "-" and os.path.samefile(name, path)
        except OSError:  # (not a file: standard input, a pattern, a URL)
            continue
        if same:
            raise UsageError(f"{what}: is {name}, which this command reads; write elsewhere")


def _probe(what: str, opener: Callable[[], int]) -> None:
    """Open for writing now, so a read-only mount or a pseudo file system fails here."""
    try:
        fd = opener()
    except OSError as exc:
        raise UsageError(f"{what}: cannot write: {exc.strerror or exc}") from None
    os.close(fd)


def check_input(path: str, *, stdin_ok: bool = True) -> None:
    """Refuse a capture path that cannot be read: missing, a directory, unreadable."""
    if path == "-" and stdin_ok:
        return
    from pcapip.sources.urls import is_pattern, is_url

    if is_url(path) or is_pattern(path):
        return  # opened through fsspec / expanded later, each with its own clear error
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: not readable")


def pick_format(fmt: str | None, output: str | None) -> str:
    """--format if given, else the output file's extension, else table on a terminal, csv off it.

    An extension pcapip does not know is refused rather than written as CSV under a
    misleading name (``-o flows.xlsx``).
    """
    if fmt:
        return fmt
    if not to_stdout(output):
        assert output is not None
        by_ext = extension_format(output)
        if by_ext is not None:
            return by_ext
        ext = os.path.splitext(output)[1].lower()
        known = ", ".join(EXTENSIONS)
        what = f"unknown extension {ext!r}" if ext else "no extension"
        raise UsageError(
            f"-o {output}: {what}; use one of {known}, or name the format with --format"
        )
    return "table" if sys.stdout.isatty() else "csv"


def extension_format(path: str) -> str | None:
    """The format a file's extension names, None for an extension pcapip does not know."""
    return EXTENSIONS.get(os.path.splitext(path)[1].lower())


def check_format(fmt: str, output: str | None) -> None:
    """Refuse binary output on a terminal (a pipe or a file is fine: ``| duckdb``)."""
    if fmt == "parquet" and to_stdout(output) and sys.stdout.isatty():
        raise UsageError(
            "--format parquet is binary: write it to a file (-o FILE.parquet) or a pipe"
        )


def check_max_rows(max_rows: int) -> None:
    if max_rows < 0:
        raise UsageError(f"--max-rows must be 0 (all) or more, not {max_rows}")


def check_analysis_output(
    fmt: str | None,
    output: str | None,
    max_rows: int,
    force: bool = False,
    reads: Sequence[str] = (),
) -> str:
    """All the checks of an analysis's output options, before any packet is read (the
    output may not be a file it ``reads``); returns the format to write."""
    check_max_rows(max_rows)
    from pcapip.report.dataset import is_dataset_target

    if fmt == "parquet" and is_dataset_target(output):
        assert output is not None
        from pcapip.sources.urls import is_url

        if is_url(output):  # a store fsspec reaches (s3://, gs://, file://, ...)
            import fsspec

            try:
                fsspec.core.url_to_fs(output)
            except (ValueError, ImportError) as exc:
                raise UsageError(f"-o {output}: {exc}") from None
            return fmt
        parent = os.path.dirname(output.rstrip("/" + os.sep)) or "."
        if not os.path.isdir(parent):
            raise UsageError(f"-o {output}: directory {parent} does not exist")
        return fmt
    check_output(output, force=force, reads=reads)
    chosen = pick_format(fmt, output)
    check_format(chosen, output)
    return chosen
