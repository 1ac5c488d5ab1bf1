"""Text from outside made safe to show: control characters made visible, output any terminal can take.

A result file, a model's metadata or a path may come from someone else. None of its characters
may reach the terminal as a command: an escape sequence can retitle or clear the terminal, move
the cursor over what was printed, or (bidi overrides) show text in another order than it is.
`printable` turns every such character into its visible `\\x1b` form; crossrt.ui and the
Markdown/CSV writers pass every string from a file through it, and the CLI's one-line errors too.

`ascii_safe` lets an ASCII-only terminal (LC_ALL=C, PYTHONIOENCODING=ascii) take crossrt's output:
the few typographic characters crossrt prints become ASCII look-alikes, others their \\x.. form,
instead of a UnicodeEncodeError.
"""

from __future__ import annotations

import codecs
import re
import sys

# C0 and C1 controls (ESC, BEL, backspace, CSI ...), DEL, and the Unicode controls of text direction.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, keep_newlines: bool = False) -> str:
    """text with no control character left: tabs and line breaks become spaces (or stay, for
    keep_newlines: crossrt's own multi-line cells), every other one its escaped form (\\x1b)."""

    def visible(m: re.Match) -> str:
        c = m.group()
        if c == "\n" and keep_newlines:
            return c
        return " " if c in "\t\n\r" else repr(c)[1:-1]

    return _CONTROL.sub(visible, str(text))


# What crossrt itself prints beyond ASCII, and its ASCII look-alike.
ASCII = {
    "—": "-",
    "–": "-",
    "±": "+-",
    "…": "...",
    "×": "x",
    "µ": "u",
    "→": "->",
    "≥": ">=",
    "≤": "<=",
    "━": "-",
    "─": "-",
    "│": "|",
    "•": "*",
    "✓": "v",
    "✗": "x",
}


def _ascii_replace(error: UnicodeError):
    if not isinstance(error, UnicodeEncodeError):
        raise error
    bad = error.object[error.start : error.end]
    return "".join(ASCII.get(c) or c.encode("ascii", "backslashreplace").decode() for c in bad), error.end


codecs.register_error("crossrt-ascii", _ascii_replace)


def ascii_safe(*streams) -> None:
    """Streams (default stdout and stderr) that cannot encode crossrt's output write look-alikes
    instead of failing."""
    for stream in streams or (sys.stdout, sys.stderr):
        try:
            "—±é".encode(getattr(stream, "encoding", None) or "ascii")
        except (UnicodeEncodeError, LookupError):
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="crossrt-ascii")
