"""Helpers for driving the pcapip TUI with Textual's pilot in tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

PCAPS = Path(__file__).resolve().parent / "pcaps"


async def wait_for(pilot: Pilot, cond: Any, timeout: float = 30.0, what: str = "") -> None:
    """Let the app run until ``cond()`` is true (fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await pilot.pause(0.02)


async def wait_loaded(pilot: Pilot, timeout: float = 30.0) -> None:
    """Until the capture is read and the detail of the selected flow is shown."""
    app = pilot.app
    await wait_for(pilot, lambda: app.loaded, timeout, "the capture to load")
    await settle(pilot)


async def settle(pilot: Pilot, timeout: float = 20.0) -> None:
    """Until no worker runs and every posted message was handled."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause(0.05)
        busy = [w for w in app.workers if not w.is_finished]
        if not busy:
            await pilot.pause(0.05)
            if not [w for w in app.workers if not w.is_finished]:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"workers still running: {busy}")
        await asyncio.sleep(0.02)


def table_lines(app: Any) -> list[str]:
    """The flows table as drawn (header first), trailing blanks dropped."""
    lines = app.query_one("#flows").visible_text()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def static_text(widget: Any, width: int = 200) -> str:
    """The plain text of a Static's content (a Rich renderable or a string)."""
    from rich.console import Console

    console = Console(width=width, color_system=None, record=False)
    with console.capture() as cap:
        console.print(widget.content)
    return cap.get()


class Tmux:
    """A private tmux server (own socket) with one fixed-size session."""

    def __init__(self, width: int = 120, height: int = 35) -> None:
        self.sock = f"pcapip-tui-{os.getpid()}-{time.monotonic_ns()}"
        self.width, self.height = width, height

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # COLUMNS/LINES (set by some test runners) would override the terminal's real size
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}
        return subprocess.run(
            ["tmux", "-L", self.sock, *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=check,
            env=env,
        )

    def start(self, command: str) -> None:
        self.tmux(
            "new-session", "-d", "-s", "t", "-x", str(self.width), "-y", str(self.height), command
        )

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t", check=False).stdout

    def wait(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not on screen after {timeout} s:\n{screen}")

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", "t", *(["-l"] if literal else []), *keys)

    def kill(self) -> None:
        self.tmux("kill-server", check=False)
