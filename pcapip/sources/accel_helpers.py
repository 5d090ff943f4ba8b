"""``@kernel_helper``: small functions a kernel calls, inlined when numba compiles it.

A helper is written once, as plain Python: the pure path calls it as it is,
and numba compiles the kernel against a copy of its globals in which each
helper is ``numba.njit(inline="always")`` of itself (:func:`compile_target`),
so the machine code is the same loop written out in one piece. A helper may
live in any module: the kernel's fingerprint (``accel_fingerprint``) covers the
files and constants of every helper it reaches, and numba's on-disk cache of the
kernel is keyed on that fingerprint (``accel_jit``), so an edited helper is never
run from stale machine code.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

HELPER_MARK = "__pcapip_kernel_helper__"
# a helper whose compiled twin is not its own source compiled: a function that builds the
# twin (a hint to the processor, which plain Python has no way to give)
COMPILED_MARK = "__pcapip_compiled_as__"
_helper_jits: dict[Any, Any] = {}


def kernel_helper(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: a small function kernels (and other helpers) may call.

    The function itself is returned unchanged, so the pure path calls it as
    plain Python; compiled kernels call ``numba.njit(inline="always")`` of
    it instead (see :func:`compile_target`).
    """
    setattr(func, HELPER_MARK, True)
    return func


def compiled_as(build: Callable[[], Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: a helper whose compiled twin ``build()`` makes (numba is imported then);
    the function itself stays the pure path's. Its file must hold ``build`` too: the
    kernels' fingerprint covers a helper's file."""

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, COMPILED_MARK, build)
        return kernel_helper(func)

    return mark


def is_helper(value: Any) -> bool:
    """True for a function marked with ``@kernel_helper``."""
    return isinstance(value, types.FunctionType) and getattr(value, HELPER_MARK, False) is True


def code_names(code: types.CodeType) -> set[str]:
    """Every global or attribute name ``code`` and the code objects nested in it use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= code_names(const)
    return names


def called_helpers(func: Callable[..., Any]) -> dict[str, Callable[..., Any]]:
    """The helpers ``func`` names, by the global name it calls them by."""
    glob = func.__globals__
    return {n: glob[n] for n in code_names(func.__code__) if n in glob and is_helper(glob[n])}


def compile_target(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as numba must see it: the same code over a copy of its globals in which
    every helper it names is replaced by ``numba.njit(inline="always")`` of the helper's
    own compile target. ``func`` itself when it names no helper.

    Imports numba when there is a helper to compile.
    """
    called = called_helpers(func)
    if not called:
        return func
    import numba

    new_glob = dict(func.__globals__)
    for name, helper in called.items():
        jitted = _helper_jits.get(helper)
        if jitted is None:
            build = getattr(helper, COMPILED_MARK, None)
            jitted = build() if build else numba.njit(inline="always")(compile_target(helper))
            _helper_jits[helper] = jitted
        new_glob[name] = jitted
    clone = types.FunctionType(
        func.__code__, new_glob, func.__name__, func.__defaults__, func.__closure__
    )
    clone.__qualname__ = func.__qualname__
    clone.__doc__ = func.__doc__
    clone.__module__ = func.__module__
    return clone
