"""How durations read for a person: the same words on a page, in a command's output and in a
notification. Pure functions of a value; no models, no settings, no web."""

from __future__ import annotations

from datetime import timedelta


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
