"""numba's JIT for the kernels, with its on-disk cache keyed on each kernel's fingerprint.

numba's own cache (``cache=True``) stamps a function's compiled code with the
bytes of the file that defines it: it would load stale machine code after an
edit to a ``@kernel_helper`` in another file, or to a constant the kernel
imports (numba freezes constants in). Here the stamp is the kernel's
fingerprint instead (``accel_fingerprint``: its file, signature, the constants
it names, and the files and constants of every helper it reaches): numba keeps
its cache directory, file names and index, and treats an index written for
another fingerprint as stale, exactly as it treats an edited source file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .accel_fingerprint import fingerprint
from .accel_helpers import compile_target

STAMP_KIND = "pcapip-kernel-fingerprint"


def cache_stamp(py_func: Callable[..., Any], signature: str | None) -> tuple[str, int]:
    """The source stamp numba's cache index of ``py_func`` carries."""
    return STAMP_KIND, fingerprint(py_func, signature or "")


def _fingerprint_cache(target: Callable[..., Any], stamp: tuple[str, int]) -> Any:
    """numba's function cache for ``target``, its index stamped with ``stamp``; None when
    this numba's cache is built differently or finds no writable place (the kernel then
    compiles without a disk cache: slower to start, never stale)."""
    try:
        from numba.core.caching import FunctionCache, IndexDataCacheFile

        cache = FunctionCache(target)
        cache._cache_file = IndexDataCacheFile(
            cache_path=cache.cache_path,
            filename_base=cache._impl.filename_base,
            source_stamp=stamp,
        )
    except (ImportError, AttributeError, TypeError, RuntimeError):
        return None
    return cache


def jit(py_func: Callable[..., Any], signature: str | None) -> Any:
    """The numba dispatcher of a kernel, cached on disk under its fingerprint.

    A kernel that calls helpers runs without numba's reference counting (NRT): each
    array passed to an inlined helper would otherwise cost an atomic increment and
    decrement per call (~15% of the flow loop); such a kernel must not allocate.
    """
    import numba

    target = compile_target(py_func)
    dispatcher = numba.njit(nogil=True, _nrt=target is py_func)(target)
    cache = _fingerprint_cache(target, cache_stamp(py_func, signature))
    if cache is not None:
        dispatcher._cache = cache  # what numba's own enable_caching() sets, with our stamp
    return dispatcher
