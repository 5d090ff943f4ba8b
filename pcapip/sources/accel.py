"""Choosing between compiled kernels and their pure-Python twins.

Every hot loop in the engine is written once, as plain Python over indexable
byte buffers and output sequences, so the same source runs in CPython and
compiles with numba. There are two compiled forms of each loop:

* **Ahead of time** (``python -m pcapip.build_kernels``): numba's ``pycc``
  compiles every kernel, for the exact argument types declared in its
  ``@kernel("...")`` signature, into the plain extension module
  ``pcapip._kernels``. Loading it costs a few milliseconds and never imports
  numba or LLVM, which together cost ~0.3 s per process and ~100 MB of
  memory even when the JIT only loads its on-disk cache.
* **Just in time** (``numba.njit``, cached on disk): used when the module is
  missing, switched off (``PCAPIP_NO_AOT=1``), or out of date. Importing
  numba costs ~0.15 s, loading the cached kernels ~0.15 s more, and the
  first-ever compilation several seconds, so without the ahead-of-time
  module small inputs run the pure twin and never import numba.

numba freezes the values of global constants into machine code, so compiled
code is only current if the kernel's source file, its signature and every
constant it (or a helper it calls) refers to are what they were at build time.
The builder embeds a fingerprint of exactly that (``accel_fingerprint``) next
to each kernel, and :meth:`Kernel.compiled` uses the module's function only
when the fingerprint computed from today's source matches: an edited kernel
never runs old machine code, it silently takes the JIT. The JIT's on-disk
cache is keyed on the same fingerprint (``accel_jit``).

An ahead-of-time function trusts its caller completely, so each one is wrapped
in a check built once from the declared signature (``accel_signature``); any
other call goes to the JIT, which handles it correctly, and is counted in
``Kernel.aot_fallbacks`` (~10 µs for the flow loop's arguments, once per batch).

A kernel may call small ``@kernel_helper`` functions, from any module
(``accel_helpers``): the pure path calls them as they are, numba inlines them.
Such a kernel compiles without numba's reference counting; it must not allocate.

Arguments may be tuples of arrays (``Tuple((u1[::1], i8[::1]))`` or
``UniTuple(i8[::1], 4)``): a struct of arrays, so a kernel takes a few
arguments instead of one per column, without copying any column.

``PCAPIP_PURE_PYTHON=1`` forces the pure path everywhere (tests compare the
paths column by column). ``PCAPIP_CHECK_RULES=1`` is a test switch, not a
production mode: the compiled flow loop hands every TCP packet to the
per-packet rules (``pcapip.flows.machine``), so tests can compare what it
applies itself with what the rules do.
"""

from __future__ import annotations

import gc
import importlib
import os
import types
from collections.abc import Callable
from typing import Any, overload

from . import accel_jit
from .accel_fingerprint import fingerprint, fingerprint_text, forget_sources
from .accel_helpers import compile_target, is_helper, kernel_helper
from .accel_signature import arg_checker, argument_specs, parse_signature

__all__ = [  # kernels import their machinery from here; the parts live in accel_*.py
    "Kernel",
    "compile_target",
    "fingerprint_text",
    "is_helper",
    "kernel",
    "kernel_fingerprint",
    "kernel_helper",
    "parse_signature",
]

PURE_ENV = "PCAPIP_PURE_PYTHON"
CHECK_RULES_ENV = "PCAPIP_CHECK_RULES"
NO_AOT_ENV = "PCAPIP_NO_AOT"
AOT_MODULE = "pcapip._kernels"
FINGERPRINT_SUFFIX = "__fp"

BACKEND_AUTO = "auto"
BACKEND_PURE = "pure"
BACKEND_COMPILED = "compiled"
BACKENDS = (BACKEND_AUTO, BACKEND_PURE, BACKEND_COMPILED)

_numba_ok: bool | None = None
_UNSET: Any = object()
_aot_module: Any = _UNSET
_registry: list[Kernel] = []


def _env_on(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def pure_forced() -> bool:
    """True when the environment asks for the pure-Python path."""
    return _env_on(PURE_ENV)


def rules_checked() -> bool:
    """True when the environment asks the flow loop to hand every packet to the per-packet
    rules (a test switch: see the module docstring)."""
    return _env_on(CHECK_RULES_ENV)


def aot_disabled() -> bool:
    """True when the environment switches the ahead-of-time module off (JIT instead)."""
    return _env_on(NO_AOT_ENV)


def numba_importable() -> bool:
    """Import numba once; False if it is missing or broken (the pure path still works)."""
    global _numba_ok
    if _numba_ok is None:
        try:
            import numba  # noqa: F401
        except Exception:  # any import failure means "no JIT", never a crash
            _numba_ok = False
        else:
            _numba_ok = True
    return _numba_ok


def aot_module() -> types.ModuleType | None:
    """The ahead-of-time kernel module, or None (not built, unloadable, or switched off).

    Looked up once per process; ``reset_aot()`` forgets the answer.
    """
    global _aot_module
    if _aot_module is _UNSET:
        _aot_module = None
        if not aot_disabled():
            try:
                _aot_module = importlib.import_module(AOT_MODULE)
            except Exception:  # missing, or built for another Python/numpy: use the JIT
                _aot_module = None
    return _aot_module


def reset_aot() -> None:
    """Forget the module lookup, the source bytes read for fingerprints and every kernel's
    resolved compiled function (tests switch the module on and off)."""
    global _aot_module
    _aot_module = _UNSET
    forget_sources()
    for k in _registry:
        k._reset()


def kernels() -> list[Kernel]:
    """Every kernel defined so far (in import order)."""
    return list(_registry)


def aot_current() -> bool:
    """True when every kernel defined so far runs ahead-of-time compiled code."""
    return bool(_registry) and all(k.aot() is not None for k in _registry)


def jit_loaded() -> bool:
    """True once numba has been imported for the kernels: the JIT now costs only a cache load."""
    return _numba_ok is True


def compiled_cheap() -> bool:
    """True when running the kernels compiled costs no (further) start-up.

    That is the case when the ahead-of-time module holds current code for
    every kernel (:func:`aot_current`: compiled is the better choice for any
    input size), or once numba has been imported (:func:`jit_loaded`: only
    the JIT's per-call overhead is left to amortise, so callers may still
    want a minimum batch size).
    """
    return _numba_ok is True or aot_current()


def compiled_available() -> bool:
    """True when a compiled path exists: current ahead-of-time code, or an importable numba."""
    return aot_current() or numba_importable()


def choose(backend: str | None, *, want_compiled: bool) -> str:
    """Resolve a backend request to "pure" or "compiled".

    ``auto`` follows ``want_compiled`` (the caller's judgement of whether the
    work is large enough to pay for compiling); an explicit ``compiled`` still
    falls back to pure when no compiled path exists, and the environment
    switch overrides everything.
    """
    if backend is None:
        backend = BACKEND_AUTO
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if pure_forced() or backend == BACKEND_PURE:
        return BACKEND_PURE
    if backend == BACKEND_COMPILED or want_compiled:
        return BACKEND_COMPILED if compiled_available() else BACKEND_PURE
    return BACKEND_PURE


_settled = False


def settle() -> None:
    """Move every object alive now into the garbage collector's permanent generation.

    Called once the kernels are loaded: numba brings a few hundred thousand
    long-lived objects that every full collection would otherwise traverse
    again, including the final one at interpreter exit (~0.1-0.35 s
    measured). Frozen objects are simply never scanned; they were going to
    live until exit anyway. With the ahead-of-time module there is little to
    freeze, and freezing costs nothing.
    """
    global _settled
    if not _settled:
        _settled = True
        gc.freeze()


# ---------------------------------------------------------------------- kernels
def kernel_fingerprint(k: Kernel) -> int:
    """A 63-bit number that changes whenever ``k``'s compiled code would
    (``accel_fingerprint``); the ahead-of-time module carries it next to each kernel."""
    if k.signature is None:
        raise ValueError(f"kernel {k.__name__} declares no signature")
    return fingerprint(k.py_func, k.signature)


class Kernel:
    """A loop function with lazily resolved compiled twins.

    ``kernel.py_func`` is the pure-Python function; ``kernel.compiled()``
    returns the ahead-of-time function (argument-checked) when the built
    module holds current code for it, else the numba dispatcher (cached on
    disk under the kernel's fingerprint, so later processes load machine code
    from ``__pycache__`` instead of recompiling). ``aot_calls`` and
    ``aot_fallbacks`` count the calls the checked function ran ahead of
    time and those it handed to the JIT.
    """

    def __init__(self, func: Callable[..., Any], signature: str | None = None) -> None:
        self.py_func = func
        self.signature = signature
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__
        self.__module__ = func.__module__
        self.aot_calls = 0
        self.aot_fallbacks = 0
        self._jit: Callable[..., Any] | None = None
        self._aot: Any = _UNSET
        self._compiled: Callable[..., Any] | None = None
        if signature is not None:
            argument_specs(signature)  # a malformed signature fails at import, not mid-run
        _registry.append(self)

    def _reset(self) -> None:
        self._aot = _UNSET
        self._compiled = None

    def jit(self) -> Callable[..., Any]:
        """The numba dispatcher (imports numba on first use), cached on disk under the
        kernel's fingerprint."""
        if self._jit is None:
            self._jit = accel_jit.jit(self.py_func, self.signature)
        return self._jit

    def aot(self) -> Callable[..., Any] | None:
        """The checked ahead-of-time function, or None when there is no current one."""
        if self._aot is _UNSET:
            self._aot = None
            module = aot_module()
            if module is not None and self.signature is not None:
                raw = getattr(module, self.__name__, None)
                built = getattr(module, self.__name__ + FINGERPRINT_SUFFIX, None)
                if raw is not None and built is not None and built() == kernel_fingerprint(self):
                    self._aot = self._checked(raw)
        return self._aot

    def _checked(self, raw: Callable[..., Any]) -> Callable[..., Any]:
        assert self.signature is not None
        matches = arg_checker(self.signature)

        def call(*args: Any) -> Any:
            if matches(args):
                self.aot_calls += 1
                return raw(*args)
            self.aot_fallbacks += 1
            return self.jit()(*args)

        call.__name__ = self.__name__
        call.__qualname__ = f"{self.__name__}[aot]"
        call.__doc__ = self.__doc__
        return call

    def compiled(self) -> Callable[..., Any]:
        if self._compiled is None:
            self._compiled = self.aot() or self.jit()
        return self._compiled

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


@overload
def kernel(signature: str) -> Callable[[Callable[..., Any]], Kernel]: ...


@overload
def kernel(signature: Callable[..., Any]) -> Kernel: ...


def kernel(signature: str | Callable[..., Any]) -> Kernel | Callable[[Callable[..., Any]], Kernel]:
    """Decorator: mark a loop function as a kernel with compiled twins.

    ``@kernel("i8(u1[::1], i8)")`` declares the one signature the ahead-of-time
    module is built for (numba type-string notation: ``[::1]`` C-contiguous,
    ``[:, ::1]`` 2-D C-contiguous). A bare ``@kernel`` has only the JIT twin.
    """
    if callable(signature):
        return Kernel(signature)

    def wrap(func: Callable[..., Any]) -> Kernel:
        return Kernel(func, signature)

    return wrap
