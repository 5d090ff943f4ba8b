"""Gate tests on system tools without letting CI silently skip them.

On a developer machine a missing tshark or haproxy is a reason to skip; in
CI (env ``CI`` set) it means the environment is broken, and a skipped
differential test would hide exactly the checks that matter, so it fails.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str) -> str:
    """Path of executable ``name``; skip (no ``CI``) or fail (``CI`` set) when absent."""
    path = shutil.which(name)
    if path is None:
        message = f"system tool {name!r} not found on PATH"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
