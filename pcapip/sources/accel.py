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
* **Just in time** (``numba.njit(cache=True)``): used when the module is
  missing, switched off (``PCAPIP_NO_AOT=1``), or out of date. Importing
  numba costs ~0.15 s, loading the cached kernels ~0.15 s more, and the
  first-ever compilation several seconds, so without the ahead-of-time
  module small inputs run the pure twin and never import numba.

numba freezes the values of global constants into machine code, so compiled
code is only current if the kernel's source file, its signature and every
constant it refers to are what they were at build time. The builder embeds
a fingerprint of exactly that (:func:`kernel_fingerprint`) next to each
kernel, and :meth:`Kernel.compiled` uses the module's function only when the
fingerprint computed from today's source matches: an edited kernel never
runs old machine code, it silently takes the JIT.

An ahead-of-time function trusts its caller completely: an array of the
wrong dtype is read as raw memory (a segfault, or silently wrong results).
Each one is therefore wrapped in a check built once from the declared
signature (parsed here, without numba): arrays must be ndarrays of the
declared dtype and dimension, C-contiguous, aligned and writeable; scalars
Python or numpy integers (or bools) in range; tuples of the declared length,
element by element. Any other call goes to the JIT, which handles it
correctly, and is counted in ``Kernel.aot_fallbacks``. The check costs
~0.2 µs per array (~10 µs for the flow loop's), paid once per batch.

A kernel may call small helper functions marked ``@kernel_helper`` (written
once, in the kernel's own file, as plain Python): the pure path calls them as
they are, and numba compiles the kernel against a copy of its globals in which
each helper is ``numba.njit(inline="always")`` of itself (:func:`compile_target`),
so the machine code is the same loop written out in one piece. Such a kernel
compiles without numba's reference counting (NRT), which would otherwise
count every array handed to a helper, per call; it must not allocate. A
kernel's fingerprint covers the constants its helpers name too. Helpers must live in
the file of the kernels that call them: numba's on-disk cache notices an edit
to that file only.

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

import builtins
import gc
import hashlib
import importlib
import os
import sys
import types
from collections.abc import Callable
from typing import Any, overload

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
    _source_cache.clear()
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


# ---------------------------------------------------------------------- helpers
HELPER_MARK = "__pcapip_kernel_helper__"
_helper_jits: dict[Any, Any] = {}


def kernel_helper(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: a small function kernels (and other helpers) may call.

    The function itself is returned unchanged, so the pure path calls it as
    plain Python; compiled kernels call ``numba.njit(inline="always")`` of
    it instead (see :func:`compile_target`).
    """
    setattr(func, HELPER_MARK, True)
    return func


def is_helper(value: Any) -> bool:
    """True for a function marked with ``@kernel_helper``."""
    return isinstance(value, types.FunctionType) and getattr(value, HELPER_MARK, False) is True


def compile_target(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as numba must see it: the same code over a copy of its globals in which
    every helper it names is replaced by ``numba.njit(inline="always")`` of the helper's
    own compile target. ``func`` itself when it names no helper.

    Imports numba when there is a helper to compile; a helper defined in another file
    than ``func`` is refused (numba's cache would not notice when it changes).
    """
    glob = func.__globals__
    called = {n: glob[n] for n in _code_names(func.__code__) if n in glob and is_helper(glob[n])}
    if not called:
        return func
    import numba

    where = func.__code__.co_filename
    new_glob = dict(glob)
    for name, helper in called.items():
        if helper.__code__.co_filename != where:
            raise TypeError(
                f"kernel helper {helper.__qualname__} is defined in {helper.__code__.co_filename}, "
                f"not beside its caller {func.__qualname__} in {where}: numba's cache watches "
                "the caller's file only"
            )
        jitted = _helper_jits.get(helper)
        if jitted is None:
            jitted = numba.njit(inline="always")(compile_target(helper))
            _helper_jits[helper] = jitted
        new_glob[name] = jitted
    clone = types.FunctionType(
        func.__code__, new_glob, func.__name__, func.__defaults__, func.__closure__
    )
    clone.__qualname__ = func.__qualname__
    clone.__doc__ = func.__doc__
    clone.__module__ = func.__module__
    return clone


# ---------------------------------------------------------------------- fingerprints
_PLAIN = (bool, int, float, complex, str, bytes, type(None))
_source_cache: dict[str, bytes] = {}


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


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
            digest = hashlib.blake2b(value.tobytes(), digest_size=16).hexdigest()
            return f"ndarray:{value.dtype.str}:{value.shape}:{digest}"
        if isinstance(value, np.generic):
            return f"{type(value).__name__}:{value!r}"
    kind = type(value)
    name = getattr(value, "__qualname__", None) or kind.__qualname__
    module = getattr(value, "__module__", None) or kind.__module__
    return f"{kind.__module__}.{kind.__qualname__}:{module}.{name}"


def _file_digest(path: str) -> str:
    source = _source_cache.get(path)
    if source is None:
        with open(path, "rb") as fh:
            source = fh.read()
        _source_cache[path] = source
    return hashlib.blake2b(source, digest_size=16).hexdigest()


def _global_parts(func: Callable[..., Any], prefix: str, seen: set[Any]) -> list[str]:
    """``name=value`` of every global ``func``'s code names; a helper's own globals follow
    it, prefixed with its name (each helper once)."""
    names = _code_names(func.__code__)
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


def kernel_fingerprint(k: Kernel) -> int:
    """A 63-bit number that changes whenever ``k``'s compiled code would (see above)."""
    if k.signature is None:
        raise ValueError(f"kernel {k.__name__} declares no signature")
    text = fingerprint_text(k.py_func, k.signature)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


# ---------------------------------------------------------------------- signatures
_INT_RANGES = {
    "i1": (-(2**7), 2**7),
    "i2": (-(2**15), 2**15),
    "i4": (-(2**31), 2**31),
    "i8": (-(2**63), 2**63),
    "u1": (0, 2**8),
    "u2": (0, 2**16),
    "u4": (0, 2**32),
    "u8": (0, 2**64),
}
_ALIASES = {
    "int8": "i1",
    "int16": "i2",
    "int32": "i4",
    "int64": "i8",
    "intp": "i8",
    "uint8": "u1",
    "uint16": "u2",
    "uint32": "u4",
    "uint64": "u8",
    "uintp": "u8",
    "float32": "f4",
    "float64": "f8",
    "boolean": "b1",
    "bool_": "b1",
}
_DTYPES = {
    "i1": "int8",
    "i2": "int16",
    "i4": "int32",
    "i8": "int64",
    "u1": "uint8",
    "u2": "uint16",
    "u4": "uint32",
    "u8": "uint64",
    "f4": "float32",
    "f8": "float64",
    "b1": "bool",
}


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets and parentheses."""
    out: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    if tail or out:
        out.append(tail)
    return out


ArgSpec = tuple[str, int, str] | list[Any]  # a list: a tuple argument, one spec per element


def _parse_arg(raw: str, signature: str) -> ArgSpec:
    """One argument's spec (see :func:`parse_signature`)."""
    raw = raw.strip()
    if raw.startswith("Tuple(") and raw.endswith(")"):
        inner = raw[len("Tuple(") : -1].strip()
        if not (inner.startswith("(") and inner.endswith(")")):
            raise ValueError(f"signature {signature!r}: write Tuple((A, B, ...)), not {raw!r}")
        items = [x for x in _split_top(inner[1:-1]) if x]
        if not items:
            raise ValueError(f"signature {signature!r}: empty tuple {raw!r}")
        return [_parse_arg(x, signature) for x in items]
    if raw.startswith("UniTuple(") and raw.endswith(")"):
        parts = _split_top(raw[len("UniTuple(") : -1])
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) < 1:
            raise ValueError(f"signature {signature!r}: write UniTuple(TYPE, COUNT), not {raw!r}")
        return [_parse_arg(parts[0], signature)] * int(parts[1])
    base, _, dims = raw.partition("[")
    base = base.strip()
    base = _ALIASES.get(base, base)
    if base not in _DTYPES:
        raise ValueError(f"signature {signature!r}: unsupported argument type {raw!r}")
    if not dims:
        return (base, 0, "")
    axes = [a.strip() for a in dims.rstrip().removesuffix("]").split(",")]
    if not axes or any(a not in (":", "::1") for a in axes):
        raise ValueError(f"signature {signature!r}: unsupported array spec {raw!r}")
    contiguous = axes[-1] == "::1" and all(a == ":" for a in axes[:-1])
    if not contiguous and any(a == "::1" for a in axes):
        raise ValueError(f"signature {signature!r}: only C-contiguous or strided arrays")
    return (base, len(axes), "C" if contiguous else "A")


def parse_signature(signature: str) -> tuple[str, list[ArgSpec]]:
    """Split a numba signature string into its return type and argument specs.

    Each argument becomes ``(type, ndim, layout)``: ``("i8", 0, "")`` for a
    scalar, ``("u1", 1, "C")`` for ``u1[::1]``, ``("i8", 2, "C")`` for
    ``i8[:, ::1]``, layout ``"A"`` for strided arrays (``f8[:]``); a tuple
    (``Tuple((A, B))``, ``UniTuple(A, 3)``) becomes the list of its elements'
    specs. Only integer, float and bool element types are understood;
    anything else raises ValueError (the builder refuses such a kernel).
    """
    sig = signature.strip()
    if not sig.endswith(")"):
        raise ValueError(f"signature {signature!r}: expected 'RETURN(ARG, ...)'")
    depth = 0
    open_at = -1
    for i in range(len(sig) - 1, -1, -1):
        if sig[i] == ")":
            depth += 1
        elif sig[i] == "(":
            depth -= 1
            if depth == 0:
                open_at = i
                break
    ret = sig[:open_at].strip() if open_at > 0 else ""
    if not ret:
        raise ValueError(f"signature {signature!r}: no return type")
    return ret, [_parse_arg(raw, signature) for raw in _split_top(sig[open_at + 1 : -1])]


def _value_checker(spec: ArgSpec) -> Callable[[Any], bool]:
    """A function telling whether one argument matches ``spec`` exactly."""
    import numpy as np

    if isinstance(spec, list):
        items = [_value_checker(x) for x in spec]
        count = len(items)

        def tuple_ok(a: Any) -> bool:
            if type(a) is not tuple or len(a) != count:
                return False
            return all(ok(v) for v, ok in zip(a, items, strict=True))

        return tuple_ok
    base, ndim, layout = spec
    if ndim:
        dtype = np.dtype(_DTYPES[base])
        contiguous = layout == "C"
        ndarray = np.ndarray

        def array_ok(a: Any) -> bool:
            if type(a) is not ndarray and not isinstance(a, ndarray):
                return False
            if a.ndim != ndim or (a.dtype is not dtype and a.dtype != dtype):
                return False
            flags = a.flags
            return bool(flags.carray if contiguous else (flags.aligned and flags.writeable))

        return array_ok
    integer = np.integer
    if base == "b1":  # bools and integers mean the same to the kernel
        np_bool = np.bool_
        return lambda a: isinstance(a, bool | int | np_bool | integer)
    if base in _INT_RANGES:  # an integer scalar within the declared width
        lo, hi = _INT_RANGES[base]
        return lambda a: isinstance(a, int | integer) and lo <= a < hi
    return lambda a: isinstance(a, float | int | integer) and not isinstance(a, bool)


def _arg_checker(signature: str) -> Callable[[tuple[Any, ...]], bool]:
    """A function telling whether an argument tuple matches ``signature`` exactly."""
    _, specs = parse_signature(signature)
    return _value_checker(specs)


# ---------------------------------------------------------------------- kernels
class Kernel:
    """A loop function with lazily resolved compiled twins.

    ``kernel.py_func`` is the pure-Python function; ``kernel.compiled()``
    returns the ahead-of-time function (argument-checked) when the built
    module holds current code for it, else the numba dispatcher (compiled
    with ``cache=True`` so later processes load machine code from
    ``__pycache__`` instead of recompiling). ``aot_calls`` and
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
            parse_signature(signature)  # a malformed signature fails at import, not mid-run
        _registry.append(self)

    def _reset(self) -> None:
        self._aot = _UNSET
        self._compiled = None

    def jit(self) -> Callable[..., Any]:
        """The numba dispatcher (imports numba on first use)."""
        if self._jit is None:
            import numba

            target = compile_target(self.py_func)
            # a kernel that calls helpers runs without numba's reference counting (NRT): each
            # array passed to an inlined helper would otherwise cost an atomic increment and
            # decrement per call (~15% of the flow loop); such a kernel must not allocate
            nrt = target is self.py_func
            self._jit = numba.njit(cache=True, nogil=True, _nrt=nrt)(target)
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
        matches = _arg_checker(self.signature)

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
