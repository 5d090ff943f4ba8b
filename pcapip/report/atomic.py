"""Output files are written whole or not at all, and never through a planted link.

Every file pcapip writes (``-o``, ``-w``, the Wireshark plugin) is written under a temporary
name next to it and renamed onto its name once complete: a crash, a full disk or Ctrl-C
never leaves a half-written CSV or Parquet file that looks complete. A symbolic link found
where the output goes is refused (someone may have planted it to make pcapip, perhaps run
as root, overwrite another file), unless ``--force`` asks to write through it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from pcapip.errors import UsageError


def _system(path: str) -> bool:
    """/dev/stdout, /dev/fd/N, /proc/self/fd/N: the system's own names (and links), which
    nobody plants and which must be written as they are."""
    return os.path.abspath(path).startswith(("/dev/", "/proc/"))


def refuse_link(path: str | os.PathLike[str], option: str = "-o", force: bool = False) -> None:
    """UsageError when ``path`` is a symbolic link and ``force`` was not given."""
    text = os.fspath(path)
    if not force and not _system(text) and os.path.islink(text):
        raise UsageError(
            f"{option} {text}: is a symbolic link (to {os.readlink(text)}); pcapip does not "
            "write through a link in place of its output: remove it, or give --force"
        )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[str]:
    """A temporary name next to ``path`` to write to; renamed onto ``path`` when the block
    ends without an exception, removed otherwise. A ``path`` that exists and is no regular
    file (a device, a pipe) is yielded itself: it cannot be replaced, only written."""
    target = os.fspath(path)
    refuse_link(target, force=force)
    if _system(target) or (os.path.exists(target) and not os.path.isfile(target)):
        # /dev/stdout, a device, a FIFO: written in place (replacing it would lose the output
        # or the device)
        yield target
        return
    if os.path.islink(target):  # (--force)
        target = os.path.realpath(target)
    tmp = f"{target}.{os.getpid()}.partial"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
