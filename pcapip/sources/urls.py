"""Captures named by URL (``s3://…``, ``gs://…``, ``file://…``, ``memory://…``), read through
fsspec, and capture names with glob patterns, expanded.

fsspec is imported only when a name is a URL, so reading local files costs nothing more.
A cluster's workers open the same names: a URL reaches the same bytes from any machine.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from typing import IO

from ..errors import CaptureError, UsageError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_GLOB = re.compile(r"[*?\[]")


def is_url(name: str) -> bool:
    """``scheme://…`` and not a local file of that name."""
    return bool(_SCHEME.match(name)) and not os.path.exists(name)


def open_url(url: str) -> tuple[IO[bytes], int]:
    """(a binary file object, its size or 0 when unknown) for a URL; CaptureError (one
    line) when it cannot be opened, or when fsspec lacks the scheme's filesystem."""
    try:
        import fsspec
    except ImportError:
        raise CaptureError(url, "cannot open a URL: fsspec is not installed") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
        size = fs.size(path) or 0
        return fs.open(path, "rb"), int(size)
    except (ImportError, ValueError) as exc:  # unknown scheme, or its package missing
        raise CaptureError(url, f"cannot open: {exc}") from None
    except FileNotFoundError:
        raise CaptureError(url, "cannot open: No such file or directory") from None
    except OSError as exc:
        raise CaptureError(url, f"cannot open: {exc.strerror or exc}") from None


def is_pattern(name: str) -> bool:
    """A glob pattern that is not itself the name of a local file."""
    return bool(_GLOB.search(name)) and (is_url(name) or not os.path.exists(name))


def expand(names: Sequence[str]) -> list[str]:
    """Capture names with glob patterns replaced by the names they match, sorted by name
    (which is not time: ``pcapip.sources.order`` orders them). A pattern that matches
    nothing is a usage error; names without a pattern are kept as given."""
    out: list[str] = []
    for name in names:
        if name == "-" or not is_pattern(name):
            out.append(name)
            continue
        found = _glob_url(name) if is_url(name) else sorted(glob.glob(name))
        if not found:
            raise UsageError(f"{name}: no capture matches this pattern")
        out += found
    return out


def _glob_url(pattern: str) -> list[str]:
    try:
        import fsspec
    except ImportError:
        raise UsageError(f"{pattern}: a URL needs fsspec (pip install fsspec)") from None
    try:
        fs, path = fsspec.core.url_to_fs(pattern)
        found = sorted(fs.glob(path))
    except (ImportError, ValueError, OSError) as exc:
        raise UsageError(f"{pattern}: {exc}") from None
    return [fs.unstrip_protocol(p) for p in found]
