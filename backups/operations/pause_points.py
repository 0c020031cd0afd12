"""Where a test holds a run in the middle of copying files, so that it can watch or kill it
there (A4C_TEST_PAUSE_DIR, set only by tests; unset, nothing here does anything).

A test arms a point by creating ``<dir>/<point>`` ("backup-files", "restorerun-files"; a
restore's safety backup is a backup), holding the fractions of the files stage at which the
run should stop ("0.25 0.5"; empty: at its first bytes; the storage reports progress at
every 5% of the bytes, so a stop lands within 5% of its mark). Each time the run stops, its
row is written and ``<point>.reached`` says how many stops it has made; it goes on once
``<point>.go`` holds that number, or once the point is disarmed (``<point>`` removed). A
held run still honours a cancel.

This replaces slowing runs down with a bandwidth cap just to be able to see them mid-way: a
stop here is an event a test waits for, not a matter of time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

POLL_SECONDS = 0.05


def _count(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _marks(gate: Path) -> list[float] | None:
    try:
        return [float(word) for word in gate.read_text().split()] or [0.0]
    except FileNotFoundError:
        return None


def pause_point(
    point: str, done: int, total: int, show: Callable[[], None], check: Callable[[], None]
) -> None:
    """Holds the run at ``point`` when a test armed it and ``done`` of ``total`` bytes is
    at its next mark; ``show`` writes the run's row first, ``check`` raises on a cancel."""
    folder = settings.A4C_TEST_PAUSE_DIR
    if not folder or not done or done >= total:
        return
    gate = Path(folder) / point
    marks = _marks(gate)
    reached, go = gate.with_name(f"{point}.reached"), gate.with_name(f"{point}.go")
    stops = _count(reached)
    if marks is None or stops >= len(marks) or done < marks[stops] * total:
        return
    show()
    stops += 1
    partial = reached.with_name(f"{point}.reached.part")
    partial.write_text(str(stops))
    os.replace(partial, reached)  # a test never reads half a number
    while gate.exists() and _count(go) < stops:
        check()
        time.sleep(POLL_SECONDS)
