"""Kernel fingerprints: what decides whether compiled code is current.

numba freezes the values of global constants into machine code, so compiled
code is only current if the kernel's source file, its signature, every
constant it names and every ``@kernel_helper`` it reaches (their files and
constants in turn) are what they were when it was compiled. The fingerprint
is a digest of exactly that: the ahead-of-time module carries one per kernel
(``build_kernels``), and numba's on-disk JIT cache is keyed on it
(``accel_jit``).
"""

from __future__ import annotations

import builtins
import sys
import types
from collections.abc import Callable
from typing import Any

try:  # hashlib.blake2b is this class; hashlib itself loads OpenSSL (~3 ms of start-up)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b

from .accel_helpers import code_names, is_helper

_PLAIN = (bool, int, float, complex, str, bytes, type(None))
_digest_cache: dict[str, str] = {}  # file path -> digest of its bytes (helpers share files)


def forget_sources() -> None:
    """Forget the files read so far (a test edits a file and looks again)."""
    _digest_cache.clear()


def _describe(value: Any, names: set[str], depth: int = 0) -> str:
    """A stable text for a global the compiled code may have frozen in."""
    if isinstance(value, _PLAIN):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, tuple | list | frozenset | set):
        items = sorted(value, key=repr) if isinstance(value, frozenset | set) else value
        inner = ",".join(_describe(v, names, depth + 1) for v in items)
        return f"{type(value).__name__}({inner})"
    if isinstance(value, types.ModuleType):
        if depth > 2:
            return f"module:{value.__name__}"
        attrs = sorted(n for n in names if hasattr(value, n))
        inner = ";".join(f"{n}={_describe(getattr(value, n), names, depth + 1)}" for n in attrs)
        return f"module:{value.__name__}[{inner}]"
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.ndarray):
            digest = blake2b(value.tobytes(), digest_size=16).hexdigest()
            return f"ndarray:{value.dtype.str}:{value.shape}:{digest}"
        if isinstance(value, np.generic):
            return f"{type(value).__name__}:{value!r}"
    kind = type(value)
    name = getattr(value, "__qualname__", None) or kind.__qualname__
    module = getattr(value, "__module__", None) or kind.__module__
    return f"{kind.__module__}.{kind.__qualname__}:{module}.{name}"


def _file_digest(path: str) -> str:
    """The digest of a file's bytes, read once per process (``forget_sources``)."""
    digest = _digest_cache.get(path)
    if digest is None:
        with open(path, "rb") as fh:
            digest = blake2b(fh.read(), digest_size=16).hexdigest()
        _digest_cache[path] = digest
    return digest


def _global_parts(func: Callable[..., Any], prefix: str, seen: set[Any]) -> list[str]:
    """``name=value`` of every global ``func``'s code names; a helper's own globals follow
    it, prefixed with its name (each helper once)."""
    names = code_names(func.__code__)
    glob = func.__globals__
    parts = []
    for name in sorted(names):
        if name in glob:
            value = glob[name]
            if is_helper(value):
                path = value.__code__.co_filename
                parts.append(f"{prefix}{name}=helper:{value.__qualname__}@{_file_digest(path)}")
                if value not in seen:
                    seen.add(value)
                    parts.extend(_global_parts(value, f"{prefix}{name}.", seen))
            else:
                parts.append(f"{prefix}{name}={_describe(value, names)}")
        elif hasattr(builtins, name):
            parts.append(f"{prefix}{name}=builtin")
    return parts


def fingerprint_text(func: Callable[..., Any], signature: str) -> str:
    """What decides whether machine code compiled from ``func`` is current, as text.

    The bytes of the file that defines ``func``, the declared signature, and
    the value of every global its code names (recursively through nested
    code objects; for a module, the values of its attributes the code names;
    for a ``@kernel_helper``, its file and the globals it names in turn).
    Names the code uses only as attributes or locals are harmless extras.
    """
    parts = [
        f"file:{_file_digest(func.__code__.co_filename)}",
        f"function:{func.__name__}",
        f"signature:{signature}",
    ]
    parts.extend(_global_parts(func, "", set()))
    return "\n".join(parts)


def fingerprint(func: Callable[..., Any], signature: str) -> int:
    """A 63-bit number that changes whenever code compiled from ``func`` would."""
    text = fingerprint_text(func, signature)
    digest = blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF
