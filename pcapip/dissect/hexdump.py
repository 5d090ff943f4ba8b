"""Hex view of raw bytes, with the bytes of one field marked.

Plain text so it works in a terminal, a log, a test assertion: the marked
range is enclosed in ``[`` ``]`` in the hex column, drawn in the separator
positions so every line keeps the same width and the columns stay aligned.
"""

from __future__ import annotations

WIDTH = 16
_PRINTABLE = bytes(range(0x20, 0x7F))


def hexdump(data: bytes, *, highlight: tuple[int, int] | None = None) -> str:
    """16 bytes per line: ``offset  hex (8 + 8)  ascii``; ``highlight`` is (offset, length)."""
    data = bytes(data)
    n = len(data)
    if n == 0:
        return ""
    lo, hi = (0, 0)
    if highlight is not None and highlight[1] > 0:
        lo = max(0, highlight[0])
        hi = min(n, highlight[0] + highlight[1])
    width = max(4, len(f"{max(n - 1, 0):x}"))
    lines = []
    for start in range(0, n, WIDTH):
        row = data[start : start + WIDTH]
        parts = [f"{start:0{width}x} "]
        for k in range(WIDTH + 1):
            i = start + k
            left_in = k > 0 and k - 1 < len(row) and lo <= i - 1 < hi
            right_in = k < len(row) and lo <= i < hi
            if right_in and not left_in:
                sep = "["
            elif left_in and not right_in:
                sep = "]"
            else:
                sep = " "
            if k == 8:  # the gap between the two 8-byte groups stays outside the marker
                parts.append(sep + " " if sep == "]" else " " + sep)
            else:
                parts.append(sep)
            if k < WIDTH:
                parts.append(f"{row[k]:02x}" if k < len(row) else "  ")
        ascii_col = "".join(chr(b) if b in _PRINTABLE else "." for b in row)
        parts.append(" " + ascii_col)
        lines.append("".join(parts).rstrip())
    return "\n".join(lines)
