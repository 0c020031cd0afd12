"""How values read for a person: the same words on a page, in a command's output and in a
notification; and text from outside made harmless to show. Pure functions of a value; no
models, no settings, no web."""

from __future__ import annotations

import unicodedata
from datetime import timedelta

# Characters that steer a terminal or reorder what a reader sees, besides the C0/C1 controls:
# bidirectional overrides and isolates (Trojan Source), and the Unicode line separators.
_STEERING = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
)


def unsafe_character(char: str) -> bool:
    """A control character (ESC, CR, DEL, C1...), a bidi override or a lone surrogate."""
    return char in _STEERING or unicodedata.category(char) in ("Cc", "Cs")


def printable(text: object, *, keep: str = "\n\t") -> str:
    """Text from outside (a name, a message, a record's field) fit for a terminal or a page.

    The one function for it: control characters, bidi overrides and lone surrogates are shown
    as escapes (``\\x1b``, ``\\u202e``), so that ``\\x1b[2J`` reads as those characters instead
    of clearing the screen. ``keep`` names the ones left as they are (line breaks and tabs of
    the console's own multi-line text).
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(_escape(c) if unsafe_character(c) and c not in keep else c for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def human_duration(value: timedelta | None) -> str:
    """'45 s', '3 min 12 s', '2 h 05 min': short enough for a table cell."""
    if value is None:
        return ""
    seconds = max(0, int(value.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} days {hours % 24} h"


def measured_seconds(seconds: float | None) -> str:
    """A measured time, such as a drill's time to restore: tenths under a minute ('0.4 s')."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    return human_duration(timedelta(seconds=seconds))


def count_of(count: int | None, singular: str, plural: str = "") -> str:
    """A count and its noun, in the number's form, with thousands separators: '1 backup',
    '30,306 files', '0 indices' (count_of(0, "index", "indices"))."""
    count = int(count or 0)
    noun = singular if count == 1 else (plural or singular + "s")
    return f"{count:,} {noun}"


def time_ago(age: timedelta | float | None) -> str:
    """How long ago, as the console's pages say it (console.js's ago() uses the same words):
    'just now', '45 s ago', '12 min ago', '3 h 05 min ago', '4 days ago'."""
    if age is None:
        return ""
    seconds = age.total_seconds() if isinstance(age, timedelta) else float(age)
    if seconds < 0:
        return "in the future"
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{int(seconds)} s ago"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min ago"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min ago"
    return count_of(hours // 24, "day") + " ago"
