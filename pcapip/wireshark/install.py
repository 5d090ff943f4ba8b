"""Where Wireshark looks for a user's Lua plugins, and putting the plugin there.

The folder differs by platform and by Wireshark version (``~/.wireshark/plugins``
before 2.5, ``~/.local/lib/wireshark/plugins`` since, ``%APPDATA%\\Wireshark\\plugins``
on Windows; ``XDG_CONFIG_HOME`` does not move it), so the installed Wireshark is
asked first (``tshark -G folders``, the same list as Help > About > Folders) and
the documented default is only the fallback when no tshark is on the PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pcapip.errors import PcapipError

_FOLDER_KEY = "Personal Lua Plugins:"


def default_install_dir() -> Path:
    """The documented personal Lua plugins folder of Wireshark 2.5 and later."""
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA")
        root = Path(appdata) if appdata else Path.home() / "AppData" / "Roaming"
        return root / "Wireshark" / "plugins"
    return Path.home() / ".local" / "lib" / "wireshark" / "plugins"


def tshark_install_dir(tshark: str) -> Path | None:
    """The personal Lua plugins folder the given tshark reports, or None if it cannot say."""
    try:
        out = subprocess.run(
            [tshark, "-G", "folders"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.stdout.splitlines():
        if line.startswith(_FOLDER_KEY):
            folder = line[len(_FOLDER_KEY) :].strip()
            return Path(folder) if folder else None
    return None


def install_dir(tshark: str | None = "tshark") -> Path:
    """Wireshark's personal Lua plugins folder for this user.

    ``tshark``: the tshark to ask (name on the PATH or a path); None to use
    the documented default without asking.
    """
    exe = shutil.which(tshark) if tshark else None
    if exe is not None:
        found = tshark_install_dir(exe)
        if found is not None:
            return found
    return default_install_dir()


def install_plugin(text: str, directory: Path, filename: str, force: bool = False) -> Path:
    """Write the plugin into ``directory`` (created if needed); the path written. A link
    in the plugin's place is refused unless ``force``; Wireshark never loads a half-written
    plugin (``pcapip.report.atomic``)."""
    from pcapip.report.atomic import atomic_path

    target = directory / filename
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, force=force) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PcapipError(
            f"cannot install the Wireshark plugin to {target}: {exc.strerror or exc}"
        ) from None
    return target
