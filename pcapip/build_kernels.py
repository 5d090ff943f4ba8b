"""Compile the engine's kernels ahead of time into the extension module ``pcapip._kernels``.

A process that finds this module runs every kernel as plain machine code
without importing numba or initialising LLVM (~0.3 s and ~100 MB saved per
run; see ``pcapip.sources.accel``). numba's ``pycc`` compiles each kernel
for the one signature it declares in ``@kernel("...")`` and links the
result with numba's small C runtime into an ordinary CPython extension.

Next to each kernel ``NAME`` the module exports ``NAME__fp()``, the
fingerprint of the source the code was compiled from
(``accel.kernel_fingerprint``: the kernel's file and the constants it names,
and the files and constants of the ``@kernel_helper`` functions it calls, wherever
they live); at run time a kernel whose fingerprint no longer matches falls back to
the JIT, so an edited kernel never runs stale code. Rebuild after changing a kernel::

    python -m pcapip.build_kernels [--output-dir DIR]

The module is written next to ``pcapip/__init__.py`` by default (where the
import finds it) and replaced atomically, so running processes keep the
file they loaded. Building takes ~10-30 s and needs a C compiler and the
Python headers.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import sys
import sysconfig
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcapip.sources import accel

# the modules whose kernels are built (one a line); every @kernel they define must declare a
# signature
KERNEL_MODULES = (
    "pcapip.sources.walk",
    "pcapip.decode.kernel",
    "pcapip.flows.kernel",
    "pcapip.flows.kernel_keys",
    "pcapip.flows.kernel_expire",
    "pcapip.flows.kernel_plain",
    "pcapip.report.textkernel",
)
MODULE_BASENAME = accel.AOT_MODULE.rpartition(".")[2]


class BuildError(Exception):
    """The kernels could not be built; the message says why and what to do."""


@dataclass(frozen=True)
class BuildResult:
    path: Path
    kernels: tuple[str, ...]
    seconds: float


def default_output_dir() -> Path:
    """The pcapip package directory: where ``import pcapip._kernels`` looks."""
    import pcapip

    return Path(pcapip.__file__).resolve().parent


def collect_kernels(modules: Sequence[str] = KERNEL_MODULES) -> list[accel.Kernel]:
    """Import the kernel modules and return their kernels, refusing ones that cannot be built."""
    for name in modules:
        importlib.import_module(name)
    found = [k for k in accel.kernels() if k.py_func.__module__ in modules]
    names = [k.__name__ for k in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BuildError(f"kernel names must be unique across modules: {', '.join(dupes)}")
    unsigned = [f"{k.py_func.__module__}.{k.__name__}" for k in found if k.signature is None]
    if unsigned:
        raise BuildError(
            'these kernels declare no signature (write @kernel("RET(ARGS)")): '
            + ", ".join(unsigned)
        )
    if not found:
        raise BuildError(f"no kernels found in {', '.join(modules)}")
    return found


def _check_toolchain() -> None:
    """Name the missing piece up front instead of a distutils traceback."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None and shutil.which("cc") is None:
        raise BuildError(f"no C compiler found (looked for {cc!r} and 'cc'): install gcc")
    include = sysconfig.get_paths().get("include", "")
    if not (Path(include) / "Python.h").is_file():
        raise BuildError(
            f"Python headers not found (no Python.h in {include!r}): install the "
            f"python{sys.version_info.major}.{sys.version_info.minor}-dev package"
        )


@contextlib.contextmanager
def _temporary_files_in(where: Path) -> Iterator[None]:
    """numba's compiler check (pycc's Toolchain) leaves its test sources (temp.c, temp.cxx)
    in temporary directories it never removes, and a compile that fails leaves its build
    directory: make them inside the build's own directory, which the build removes."""
    before = tempfile.tempdir
    tempfile.tempdir = str(where)
    try:
        yield
    finally:
        tempfile.tempdir = before


def _constant(value: int) -> Callable[[], int]:
    def fingerprint() -> int:
        return value

    return fingerprint


def _load(path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(accel.AOT_MODULE, path)
    if spec is None or spec.loader is None:
        raise BuildError(f"cannot load the built module {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pycc() -> tuple[Any, type[Warning]]:
    """numba's ``pycc.CC`` and its deprecation warning, or a BuildError that says the JIT
    takes over: numba has deprecated pycc, and a release without it costs speed only."""
    try:
        import numba
        from numba.core.errors import NumbaPendingDeprecationWarning
    except Exception as exc:
        raise BuildError(f"numba is needed to build the kernels: {exc}") from exc
    try:
        from numba.pycc import CC
    except Exception as exc:
        raise BuildError(
            f"numba {numba.__version__} cannot build ahead of time (numba.pycc: {exc}); "
            "pcapip runs the same kernels on numba's JIT instead (slower start, same results). "
            f"To build them, install the numba pcapip is tested with: pip install '{_numba_pin()}'"
        ) from exc
    return CC, NumbaPendingDeprecationWarning


def _numba_pin() -> str:
    """numba's requirement as pyproject.toml declares it (read from pcapip's metadata)."""
    try:
        requires = importlib.metadata.requires("pcapip") or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    pins = [r.split(";")[0].replace(" ", "") for r in requires if re.match(r"numba\b", r)]
    return pins[0] if pins else "numba"


@contextlib.contextmanager
def _inlining_keeps_ssa() -> Iterator[None]:
    """numba's inliner switches SSA off in the flags of the function it inlines into
    (``InlineWorker.run_untyped_passes`` sets ``enable_ssa = False`` for the callee and
    leaves it so), and pycc compiles every exported function with one shared Flags
    object: each kernel built after one that calls a ``@kernel_helper`` would be typed
    without SSA (and a kernel whose variables change type fails). Restore the flag once
    the callee is done, so every kernel compiles as the JIT compiles it."""
    try:
        from numba.core.inline_closurecall import InlineWorker
    except Exception:  # another numba: nothing to restore
        yield
        return
    original = InlineWorker.run_untyped_passes

    def run_untyped_passes(self: Any, func: Any, enable_ssa: bool = False) -> Any:
        flags = self.flags
        before = flags.enable_ssa
        try:
            return original(self, func, enable_ssa)
        finally:
            flags.enable_ssa = before

    InlineWorker.run_untyped_passes = run_untyped_passes
    try:
        yield
    finally:
        InlineWorker.run_untyped_passes = original


def build(output_dir: str | os.PathLike[str] | None = None) -> BuildResult:
    """Compile every kernel into ``<output_dir>/_kernels<EXT_SUFFIX>`` and check the result."""
    t0 = time.perf_counter()
    out_dir = Path(output_dir) if output_dir is not None else default_output_dir()
    if not out_dir.is_dir():
        raise BuildError(f"output directory {out_dir} does not exist")
    found = collect_kernels()
    _check_toolchain()
    with warnings.catch_warnings():
        # pycc is marked pending-deprecation; it is still the way to build without numba at
        # run time, and the warning would only alarm whoever runs the build
        warnings.filterwarnings("ignore", message=".*pycc.*")
        CC, NumbaPendingDeprecationWarning = _pycc()
        warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
        fingerprints = {k.__name__: accel.kernel_fingerprint(k) for k in found}
        tmp = Path(tempfile.mkdtemp(prefix=".kernels-build-", dir=out_dir))
        try:
            with _temporary_files_in(tmp):  # (its compiler check runs here)
                cc = CC(MODULE_BASENAME, source_module=accel.__name__)
            cc.output_dir = str(tmp)
            cc.verbose = False
            # kernels allocate nothing: without numba's reference counting, an array handed to
            # an inlined @kernel_helper costs nothing per call (see accel.Kernel.jit)
            cc.use_nrt = False
            for k in found:
                assert k.signature is not None
                # (helpers the kernel calls are compiled into it: accel.compile_target)
                cc.export(k.__name__, k.signature)(accel.compile_target(k.py_func))
                cc.export(k.__name__ + accel.FINGERPRINT_SUFFIX, "i8()")(
                    _constant(fingerprints[k.__name__])
                )
            try:
                with _inlining_keeps_ssa(), _temporary_files_in(tmp):
                    cc.compile()
            except Exception as exc:
                hint = (
                    ""  # numba's own errors (typing a kernel) say what is wrong
                    if type(exc).__module__.startswith("numba")
                    else "; the build needs a C and a C++ compiler (gcc, g++) and the Python headers"
                )
                raise BuildError(
                    f"compiling the kernels failed ({type(exc).__name__}: {exc}){hint}"
                ) from exc
            built = tmp / cc.output_file
            module = _load(built)
            for name, fp in fingerprints.items():
                if getattr(module, name + accel.FINGERPRINT_SUFFIX)() != fp:
                    raise BuildError(f"the built module carries a wrong fingerprint for {name}")
            target = out_dir / cc.output_file
            os.replace(built, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return BuildResult(target, tuple(fingerprints), time.perf_counter() - t0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pcapip.build_kernels",
        description="Compile pcapip's kernels ahead of time (module pcapip._kernels).",
    )
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        help="where to write the module (default: the pcapip package directory)",
    )
    args = parser.parse_args(argv)
    try:
        result = build(args.output_dir)
    except (BuildError, OSError) as exc:
        print(f"pcapip.build_kernels: {exc}", file=sys.stderr)
        return 1
    print(
        f"built {accel.AOT_MODULE} ({len(result.kernels)} kernels: {', '.join(result.kernels)})\n"
        f"  -> {result.path} in {result.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
