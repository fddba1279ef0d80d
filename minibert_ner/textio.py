"""Text at the edges, one rule each, shared by the command line and batch jobs: where a line is
not UTF-8, JSON that stays one record a line for every reader, and text that is safe to show
on a terminal."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

__all__ = ["decode_line", "for_terminal", "json_line", "utf8_problem"]


def decode_line(raw: bytes, first: bool) -> str:
    """One line of a text file as text: without its line ending (LF or CRLF) and, on the first
    line, without a UTF-8 byte-order mark. UnicodeDecodeError if it is not UTF-8."""
    if first:
        raw = raw.removeprefix(b"\xef\xbb\xbf")
    return raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8")


def utf8_problem(e: UnicodeDecodeError, line_start: int = 0) -> str:
    """What is wrong with bytes that are not UTF-8: the first bad byte and its offset in its
    line (0-based, as `line[offset]`; `line_start`: where that line begins in the bytes that
    were decoded), e.g. "invalid UTF-8: byte 0xff at byte 4 of the line (invalid start byte)"."""
    byte, offset = e.object[e.start], e.start - line_start
    return f"invalid UTF-8: byte {byte:#04x} at byte {offset} of the line ({e.reason})"


# Characters that JSON leaves unescaped (with ensure_ascii=False) but that Unicode-aware line
# splitters (Python's str.splitlines, JavaScript before ES2019) take for line breaks: escaped,
# so that every reader sees one record per line.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(record: Any) -> str:
    """`record` as one line of JSON (UTF-8 text kept as it is, no line break inside)."""
    return json.dumps(record, ensure_ascii=False).translate(_LINE_BREAKS)


# Format characters that reorder what a terminal shows (bidirectional overrides and isolates):
# text could otherwise display as something it is not.
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def for_terminal(text: str) -> str:
    """`text` with control characters (escape sequences, bells, carriage returns, C1 codes) and
    bidirectional overrides written as visible escapes (\\x1b, \\u202e), so that input can
    neither move the cursor, recolour the terminal nor reorder what is shown."""
    return "".join(
        (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        if unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS
        else c
        for c in text
    )
