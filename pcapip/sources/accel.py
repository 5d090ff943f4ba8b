"""Choosing between the compiled (numba) kernels and their pure-Python twins.

Every hot loop in the engine is written once, as plain Python over indexable
byte buffers and output sequences, so the same source runs in CPython and
compiles under ``numba.njit``. Importing numba costs ~0.4 s and compiling a
kernel several seconds the first time (cached on disk afterwards), so small
inputs run the pure twin and never import numba; large inputs pay the import
once and run ~50x faster.

``PCAPIP_PURE_PYTHON=1`` forces the pure path everywhere (tests compare the
two paths column by column).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Any

PURE_ENV = "PCAPIP_PURE_PYTHON"

BACKEND_AUTO = "auto"
BACKEND_PURE = "pure"
BACKEND_COMPILED = "compiled"
BACKENDS = (BACKEND_AUTO, BACKEND_PURE, BACKEND_COMPILED)

_numba_ok: bool | None = None


def pure_forced() -> bool:
    """True when the environment asks for the pure-Python path."""
    return os.environ.get(PURE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def numba_available() -> bool:
    """Import numba once; False if it is missing or broken (the pure path still works)."""
    global _numba_ok
    if _numba_ok is None:
        try:
            import numba  # noqa: F401
        except Exception:  # any import failure means "no compiled path", never a crash
            _numba_ok = False
        else:
            _numba_ok = True
    return _numba_ok


def numba_loaded() -> bool:
    """True once numba has been imported by anyone: then compiled kernels cost only a cache load."""
    return _numba_ok is True


def choose(backend: str | None, *, want_compiled: bool) -> str:
    """Resolve a backend request to "pure" or "compiled".

    ``auto`` follows ``want_compiled`` (the caller's judgement of whether the
    work is large enough to pay for numba); an explicit ``compiled`` still
    falls back to pure when numba cannot be imported, and the environment
    switch overrides everything.
    """
    if backend is None:
        backend = BACKEND_AUTO
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if pure_forced() or backend == BACKEND_PURE:
        return BACKEND_PURE
    if backend == BACKEND_COMPILED or want_compiled:
        return BACKEND_COMPILED if numba_available() else BACKEND_PURE
    return BACKEND_PURE


_settled = False


def settle() -> None:
    """Move every object alive now into the garbage collector's permanent generation.

    Called once numba and the kernels are loaded: numba brings a few hundred
    thousand long-lived objects that every full collection would otherwise
    traverse again, including the final one at interpreter exit (~0.1-0.35 s
    measured). Frozen objects are simply never scanned; they were going to
    live until exit anyway.
    """
    global _settled
    if not _settled:
        _settled = True
        gc.freeze()


class Kernel:
    """A loop function with a lazily compiled twin.

    ``kernel.py_func`` is the pure-Python function; ``kernel.compiled()``
    returns the numba dispatcher (compiled with ``cache=True`` so later
    processes load machine code from ``__pycache__`` instead of recompiling).
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self.py_func = func
        self._jit: Callable[..., Any] | None = None
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__

    def compiled(self) -> Callable[..., Any]:
        if self._jit is None:
            import numba

            self._jit = numba.njit(cache=True, nogil=True)(self.py_func)
        return self._jit

    def get(self, backend: str) -> Callable[..., Any]:
        return self.compiled() if backend == BACKEND_COMPILED else self.py_func

    def run(self, backend: str, *args: Any) -> Any:
        """Call the kernel on ``backend``; the first compiled call also settles the GC."""
        if backend != BACKEND_COMPILED:
            return self.py_func(*args)
        out = self.compiled()(*args)
        if not _settled:
            settle()
        return out


def kernel(func: Callable[..., Any]) -> Kernel:
    """Decorator: mark a loop function as a kernel with a compiled twin."""
    return Kernel(func)
