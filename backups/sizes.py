"""Byte counts as people read and write them, in binary units (1 KiB = 1024 bytes), said once
for the pages, the command line, the doctor and every setting that takes a size."""

from __future__ import annotations

from backups.errors import ConfigError

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def format_size(count: int | float | None) -> str:
    """'512 B', '1.5 KiB', '1001.4 MiB' -> '1.0 GiB': always the largest unit below 1024."""
    if count is None:
        return ""
    if abs(count) < 1024:
        return f"{int(count)} B"
    size = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if abs(size) < 1023.95 or unit == "TiB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


def parse_size(text: str) -> int | None:
    """'500K', '50M', '1.5G', '2T' or a plain byte count; None when text is none of these."""
    text = (text or "").strip()
    upper = text.upper().removesuffix("IB").removesuffix("B")
    if upper and upper[-1] in UNITS:
        number, unit = upper[:-1], UNITS[upper[-1]]
    else:
        number, unit = upper, 1
    try:
        value = float(number) * unit
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        return None
    return int(value)


def parse_bandwidth(text: str, setting: str = "A4C_FILE_BANDWIDTH") -> int:
    """'' or '0' (no limit), or bytes per second: '500K', '50M', '1.5G' (binary units)."""
    text = (text or "").strip()
    if text in ("", "0"):
        return 0
    value = parse_size(text) or 0
    if value < 1024:
        raise ConfigError(
            f"{setting} is {text!r}: give bytes per second of at least 1K, like 500K, 50M or "
            "1.5G, or 0 for no limit."
        )
    return value
