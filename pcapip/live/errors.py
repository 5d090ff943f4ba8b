"""What can go wrong with a live capture, each as one plain line for the operator.

The capture tool (dumpcap or tcpdump) knows why it failed and says so on
stderr, in a paragraph written for Wireshark users.  These errors keep the
tool's own sentence (it is the authority: a BPF syntax error is only
explained by the compiler that rejected it) and add what pcapip's user can
do about it.
"""

from __future__ import annotations

from pcapip.errors import PcapipError


class LiveError(PcapipError):
    """A live capture could not start or did not end normally (exit status 2)."""


class ToolMissing(LiveError):
    """Neither dumpcap nor tcpdump can be run."""


class InterfaceNotFound(LiveError):
    """The interface named with ``-i`` does not exist (in this network namespace)."""


class NoPermission(LiveError):
    """The capture tool runs but may not open the interface."""


class FilterError(LiveError):
    """The capture filter (``-f``) does not compile."""


class InterfaceGone(LiveError):
    """The interface disappeared while capturing; what was captured before is kept."""


class CaptureFailed(LiveError):
    """The capture tool failed for another reason; its last words are quoted."""
