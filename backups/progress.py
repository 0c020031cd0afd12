"""One percentage for a whole run, from the work each of its stages moves.

A run (a backup, a restore) passes through phases; a few of them do work that can be counted
(a snapshot's bytes, the files' bytes, shards recovered) and the others are moments (a plan, a
pre-command, a record). The operation says which stages it will pass through and what each
weighs in bytes, from real totals (the live index sizes, the backup's file bytes, the previous
backup's figures where the live ones would cost a walk). The run's percentage is then the
finished stages' weight plus the running stage's share of its own counters, over the total.

It never goes back (a total learned late, a stage's counters restarting at zero) and it stays
below 100 until the run has ended: 100% means done, not "the count caught up with an estimate".
Pure functions of the row's fields: the Runner writes the figure, the pages read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RUNNING_CEILING = 99  # 100 is written by the run's successful end only


@dataclass(frozen=True)
class Stage:
    """A stage covers every phase whose name starts with its own ("files" covers "files: swap").
    weight: the bytes it moves, or None when not known before it starts (the mean of the known
    weights stands in until its counters report a total)."""

    name: str
    weight: int | None

    def covers(self, phase: str) -> bool:
        return phase == self.name or phase.startswith(self.name + ":")

    def to_json(self) -> dict:
        return {"name": self.name, "weight": self.weight}


def stages_of(data: Sequence[dict]) -> list[Stage]:
    return [Stage(d["name"], d.get("weight")) for d in data or ()]


def phase_fraction(run) -> float | None:
    """How far the running phase is by its own counters (a run row's, or any object with
    them): bytes when it counts them, else files, else shards. None when it counts nothing,
    or while its totals are only a floor (still being counted): the figure then holds."""
    if not getattr(run, "totals_known", True):
        return None
    for name in ("bytes", "files", "shards"):
        done, total = getattr(run, f"{name}_done"), getattr(run, f"{name}_total")
        if total > 0:
            return max(0.0, min(1.0, done / total))
    return None


def _weights(stages: Sequence[Stage]) -> list[float]:
    known = [s.weight for s in stages if s.weight is not None and s.weight > 0]
    stand_in = sum(known) / len(known) if known else 1.0
    weights = [float(s.weight) if s.weight is not None else stand_in for s in stages]
    if sum(weights) <= 0:
        return [1.0] * len(stages)  # nothing to move anywhere: each stage counts alike
    return weights


def _index(stages: Sequence[Stage], phase: str) -> int | None:
    for i, stage in enumerate(stages):
        if stage.covers(phase):
            return i
    return None


def overall(stages: Sequence[Stage], phase: str, fraction: float | None, floor: int) -> int:
    """The run's percentage while it runs: never below ``floor`` (what it showed before) and
    never 100. A phase outside every stage keeps the figure where it was."""
    i = _index(stages, phase)
    if i is None or fraction is None:
        return floor
    weights = _weights(stages)
    value = (sum(weights[:i]) + weights[i] * fraction) / sum(weights)
    return max(floor, min(RUNNING_CEILING, int(100 * value)))


def completed(stages: Sequence[Stage], phase: str, floor: int) -> int:
    """The percentage once ``phase`` has ended: its stage counts as done."""
    i = _index(stages, phase)
    if i is None:
        return floor
    weights = _weights(stages)
    value = sum(weights[: i + 1]) / sum(weights)
    return max(floor, min(RUNNING_CEILING, int(100 * value)))


def stage_position(stages: Sequence[Stage], phase: str) -> tuple[int, int] | None:
    """(1-based number, count) of the stage the phase is in, for "step 2 of 3"."""
    i = _index(stages, phase)
    return None if i is None else (i + 1, len(stages))


def steps_to_come(stages: Sequence[Stage], history: Sequence[str]) -> list[str]:
    """The stages no phase of ``history`` (the phases begun so far, in order) has reached:
    with the history, the whole list of a run's steps as far as it is known."""
    return [s.name for s in stages if not any(s.covers(name) for name in history)]


def step_position(stages: Sequence[Stage], history: Sequence[str]) -> tuple[int, int] | None:
    """(1-based number, count) of the running phase among the phases begun so far and the
    stages still to come: the counter a list of those phases agrees with."""
    if not history:
        return None
    return len(history), len(history) + len(steps_to_come(stages, history))
