"""Run ``pcapip live`` as a real process (usually inside a test network namespace).

Tests of live capture must see what an operator sees: lines on stdout as
they are flushed (with the time each arrived, to check that rolling output
really is rolling), notes and errors on stderr, the exit status.  The
process runs in its own session so a failing test can stop it and its
capture tool together.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pcapip.flows.columns import COLUMNS

REPO = Path(__file__).resolve().parent.parent


class LiveRun:
    """A running ``pcapip live``; a context manager that never leaves it running."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        prefix: Sequence[str] = (),
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        python: str = sys.executable,
    ) -> None:
        argv = [*prefix, python, "-m", "pcapip", "live", *args]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd or REPO,
            start_new_session=True,
        )
        self.out: list[tuple[float, str]] = []
        self.err: list[tuple[float, str]] = []
        self.ended_at: float | None = None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pump(self, stream, sink: list[tuple[float, str]]) -> None:
        for raw in iter(stream.readline, b""):
            sink.append((time.monotonic(), raw.decode("utf-8", "replace").rstrip("\n")))

    # -- waiting -------------------------------------------------------------
    def wait_stderr(self, text: str, timeout: float = 10.0) -> None:
        """Until a stderr line contains ``text``; fails with what was said otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for _, line in list(self.err)):
                return
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the readers catch the last lines
                if any(text in line for _, line in list(self.err)):
                    return
                raise AssertionError(
                    f"pcapip live exited ({self.proc.returncode}) before saying {text!r}: "
                    f"{self.stderr}"
                )
            time.sleep(0.02)
        raise AssertionError(f"pcapip live did not say {text!r} in {timeout} s: {self.stderr}")

    def wait_ready(self, timeout: float = 10.0) -> None:
        self.wait_stderr("capturing on", timeout)

    def wait(self, timeout: float = 20.0) -> int:
        rc = self.proc.wait(timeout=timeout)
        self.ended_at = time.monotonic()
        for t in self._threads:
            t.join(timeout=5)
        return rc

    def interrupt(self) -> None:
        """What Ctrl-C in a terminal does: SIGINT to the whole foreground process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def __enter__(self) -> LiveRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()

    # -- output --------------------------------------------------------------
    @property
    def stdout(self) -> str:
        return "".join(line + "\n" for _, line in self.out)

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.err)

    def csv_rows(self) -> list[tuple[float, dict[str, str]]]:
        """Rolling rows of ``--format csv`` with their arrival time; stdout must be one CSV
        with analyze's header, once, and every row its columns."""
        assert self.out and self.out[0][1] == ",".join(COLUMNS), self.stdout[:500]
        rows: list[tuple[float, dict[str, str]]] = []
        for t, line in self.out[1:]:
            cells = next(csv.reader([line]))
            assert len(cells) == len(COLUMNS), line
            rows.append((t, dict(zip(COLUMNS, cells, strict=True))))
        return rows

    def json_rows(self) -> list[tuple[float, dict]]:
        """Rolling objects of ``--format json`` with their arrival time; every line has
        analyze's JSON keys, in order."""
        rows: list[tuple[float, dict]] = []
        for t, line in self.out:
            obj = json.loads(line)
            assert list(obj) == list(COLUMNS), line
            rows.append((t, obj))
        return rows


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))
