"""Kernel signatures, read without numba: what the ahead-of-time code accepts.

An ahead-of-time function trusts its caller completely: an array of the wrong
dtype is read as raw memory (a segfault, or silently wrong results). Each one
is therefore wrapped in a check built once from the declared signature
(``@kernel("...")``, numba's type-string notation, parsed here): arrays must be
ndarrays of the declared dtype and dimension, C-contiguous, aligned and
writeable; scalars Python or numpy integers (or bools) in range; tuples of the
declared length, element by element. The check costs ~0.2 µs per array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


_specs: dict[str, list[ArgSpec]] = {}


def argument_specs(signature: str) -> list[ArgSpec]:
    """``parse_signature``'s argument specs, parsed once per signature: a kernel's at import
    (a malformed one fails there) and again for its checker (the specs are not modified)."""
    specs = _specs.get(signature)
    if specs is None:
        specs = _specs[signature] = parse_signature(signature)[1]
    return specs


def arg_checker(signature: str) -> Callable[[tuple[Any, ...]], bool]:
    """A function telling whether an argument tuple matches ``signature`` exactly."""
    return _value_checker(argument_specs(signature))
