"""One checkout per test run: pcapip and its Textual app (pcapip.tui) from the same tree.

pcapip.tui's source is tui/, mapped in by the installation (pyproject.toml's
package-dir). Putting a checkout on PYTHONPATH over a venv that installed another
checkout gives that checkout's pcapip with the other one's app: the TUI tests would
test code nobody is looking at. Stop before running anything instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    tui = sys.modules.get("pcapip.tui")
    if tui is None or tui.__file__ is None:  # nothing collected imports the app
        return
    pcapip_dir = Path(sys.modules["pcapip"].__file__ or "").resolve().parent
    tui_dir = Path(tui.__file__).resolve().parent
    # installed: site-packages/pcapip/tui; a checkout: tui/ next to pcapip/
    if tui_dir not in (pcapip_dir / "tui", pcapip_dir.parent / "tui"):
        pytest.exit(
            f"pcapip comes from {pcapip_dir} but pcapip.tui from {tui_dir}: install the "
            f"checkout under test in its own venv (pip install -e '.[dev]') instead of "
            f"putting it on PYTHONPATH",
            returncode=4,
        )
