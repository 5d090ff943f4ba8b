"""Dissectors for what an L4 proxy tells the origin: TOA TCP options and PROXY headers.

They work on bytes only (no flows, no reports), return Wireshark-style field
trees, and never raise on any input: problems are expert items with stable
codes (``pcapip.dissect.codes.CODES``).

The names below load from their module on first use (PEP 562): every ``pcapip analyze``
needs the TOA registry, but the PROXY and frame dissectors only when a capture holds
something for them, and importing them all is start-up time a 10-packet capture pays.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# imported now: the name is also its module's, which importing the submodule would bind
# here in the function's place (and the module imports nothing)
from pcapip.dissect.hexdump import hexdump

if TYPE_CHECKING:  # for type checkers: at run time __getattr__ loads these
    from pcapip.dissect.codes import CODES, CodeInfo, expert
    from pcapip.dissect.fields import Expert, Field, Severity
    from pcapip.dissect.frame import dissect_frame
    from pcapip.dissect.proxy import parse_proxy
    from pcapip.dissect.proxy_model import ParseState, ProxyHeader, ProxyParse, ProxyTlv
    from pcapip.dissect.tcp_options import ToaResult, dissect_tcp_options
    from pcapip.dissect.toa_option import ToaOption
    from pcapip.dissect.toa_registry import (
        DEFAULT_KINDS,
        DEFAULT_REGISTRY,
        KNOWN_VARIANTS,
        ToaRegistry,
        ToaVariant,
    )

# module under pcapip.dissect -> the public names it defines
_EXPORTS = {
    "codes": ("CODES", "CodeInfo", "expert"),
    "fields": ("Expert", "Field", "Severity"),
    "frame": ("dissect_frame",),
    "proxy": ("parse_proxy",),
    "proxy_model": ("ParseState", "ProxyHeader", "ProxyParse", "ProxyTlv"),
    "tcp_options": ("ToaResult", "dissect_tcp_options"),
    "toa_option": ("ToaOption",),
    "toa_registry": ("DEFAULT_KINDS", "DEFAULT_REGISTRY", "KNOWN_VARIANTS", "ToaRegistry", "ToaVariant"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "CODES",
    "CodeInfo",
    "DEFAULT_KINDS",
    "DEFAULT_REGISTRY",
    "KNOWN_VARIANTS",
    "Expert",
    "Field",
    "ParseState",
    "ProxyHeader",
    "ProxyParse",
    "ProxyTlv",
    "Severity",
    "ToaOption",
    "ToaRegistry",
    "ToaResult",
    "ToaVariant",
    "dissect_frame",
    "dissect_tcp_options",
    "expert",
    "hexdump",
    "parse_proxy",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module the first time it is asked for."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'pcapip.dissect' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pcapip.dissect.{module}"), name)
    globals()[name] = value  # later lookups no longer come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
