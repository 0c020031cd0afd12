"""Writing a running operation's progress onto its row: phase and phase history, counters
(throttled), the whole run's percentage from its stages, a nested run followed, the end.

Only named fields are written (queryset updates), so a cancel request written by someone
else is never overwritten by a progress update. The heartbeat and the cancel request are
operations/heartbeat.py's; the status is the run row's transition()'s.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from django.utils import timezone

from backups import progress
from backups.operations.heartbeat import Heartbeat
from backups.operations.pause_points import pause_point

# What a long operation is told as it goes: the run row, read back after each update.
ProgressCallback = Callable[[object], None] | None


def short_trace() -> str:
    """The end of the current exception's traceback, as kept on a run row's error detail."""
    return "".join(traceback.format_exc(limit=8))[-6000:]


class ProgressWriter:
    """Reports one running operation onto its row: phase, counters, stages and percentage.

    Its ``heartbeat`` says whether the run was asked to stop (check()); a run followed inside
    another (a restore's safety backup, made with ``outer``) is shown on the outer run's row
    and shares its heartbeat, so that cancelling the restore cancels it. What differs between
    run models is asked of the row itself (RunRow.phase_history, RunRow.figures_of)."""

    COUNTERS = (
        "shards_done",
        "shards_total",
        "bytes_done",
        "bytes_total",
        "files_done",
        "files_total",
    )

    def __init__(
        self,
        run,
        on_progress: Callable[[object], None] | None = None,
        heartbeat: Heartbeat | None = None,
        *,
        outer: ProgressWriter | None = None,
    ):
        self.run = run
        self.model = type(run)
        self.outer = outer
        self.on_progress = on_progress or (outer.follow if outer else None)
        self.heartbeat = heartbeat or (outer.heartbeat if outer else Heartbeat(run))
        self._last_write = 0.0
        self._stage_phase = ""  # the phase named by phase(), which follow() details
        self._inner = None  # the run followed inside the current phase, if any

    @property
    def cancellable(self) -> bool:
        return self.heartbeat.cancellable

    @cancellable.setter
    def cancellable(self, value: bool) -> None:
        self.heartbeat.cancellable = value

    def check(self, *, fresh: bool = False) -> None:
        """Raises Cancelled once someone asked this run to stop (see Heartbeat.check)."""
        self.heartbeat.check(fresh=fresh)

    # --- writing ----------------------------------------------------------------------
    def update(self, **fields) -> None:
        """Writes fields onto the row now, and onto the in-memory run."""
        fields.setdefault("heartbeat_at", timezone.now())
        for name, value in fields.items():
            setattr(self.run, name, value)
        if "percent" not in fields:
            percent = self._overall()
            if percent != self.run.percent:
                fields["percent"] = self.run.percent = percent
        self.model.objects.filter(pk=self.run.pk).update(**fields)
        self._last_write = time.monotonic()
        if self.on_progress:
            self.on_progress(self.run)

    def phase(self, name: str, *, reset_counters: bool = False) -> None:
        """Starts a phase; a phase that counts work of its own starts its counters at zero."""
        self.check(fresh=True)
        fields: dict = {"phase": name}
        stages = progress.stages_of(self.run.stages)
        if self.run.phase and not any(s.covers(name) and s.covers(self.run.phase) for s in stages):
            # the phase that ends now had a stage: that stage's work is done
            fields["percent"] = progress.completed(stages, self.run.phase, self.run.percent)
        self._stage_phase, self._inner = name, None
        if reset_counters:
            fields.update(dict.fromkeys(self.COUNTERS, 0), totals_known=True)
        fields.update(self.run.phase_history(name, timezone.now()))
        self.update(**fields)

    def progress(self, **counters) -> None:
        """Counters change often: held in memory, written at most every half second."""
        for name, value in counters.items():
            setattr(self.run, name, value)
        if time.monotonic() - self._last_write >= 0.5:
            self.update(**counters)
        elif self.on_progress:
            self.on_progress(self.run)
        self.check()

    def file_progress(self, p) -> None:
        """The storage's FileProgress, as the run row's counters: what a copy of files reports."""
        self._learn_weight(p.bytes_total)
        figures = {
            "files_done": p.files_done,
            "files_total": p.files_total,
            "bytes_done": p.bytes_done,
            "bytes_total": p.bytes_total,
            "totals_known": p.total_known,
            **self.run.figures_of(p),
        }
        self.progress(**figures)
        point = f"{self.model._meta.model_name}-files"
        pause_point(point, p.bytes_done, p.bytes_total, lambda: self.show_now(figures), self.check)

    def shard_progress(self, p) -> None:
        """Elasticsearch's RecoveryProgress, as the row's counters: shards restored, of a
        total that is only a floor while some index is not in the cluster yet."""
        self.progress(shards_done=p.done, shards_total=p.total, totals_known=not p.missing)

    def flush(self, **counters) -> None:
        for name, value in counters.items():
            setattr(self.run, name, value)
        fields = {k: getattr(self.run, k) for k in (*self.COUNTERS, "totals_known")}
        self.update(**fields)

    def show_now(self, figures: dict) -> None:
        """Writes ``figures`` onto the row now, and the outer run's phase and counters (which
        follow this run's) onto its own: what a page reads then is what is true."""
        self.update(**figures)
        if self.outer is not None:
            outer = self.outer.run
            counters = {k: getattr(outer, k) for k in (*self.COUNTERS, "totals_known")}
            self.outer.update(phase=outer.phase, **counters)

    # --- the whole run's percentage (backups/progress.py) ----------------------------
    def plan_stages(self, stages: list[progress.Stage]) -> None:
        """Says which stages this run passes through and what each weighs."""
        self.update(stages=[s.to_json() for s in stages])

    def weigh_stage(self, name: str, weight: int) -> None:
        """A stage's weight learned from a real total before its work starts."""
        stages = [dict(s) for s in self.run.stages]
        for stage in stages:
            if stage["name"] == name:
                stage["weight"] = weight
        if stages != self.run.stages:
            self.update(stages=stages)

    def follow(self, inner) -> None:
        """A run inside this phase (a restore's safety backup): its phase and counters shown
        on this row, its own percentage as this stage's share."""
        self._inner = inner
        counters = {name: getattr(inner, name) for name in self.COUNTERS}
        self.progress(
            phase=f"{self._stage_phase}: {inner.phase}"[:40],
            totals_known=inner.totals_known,
            **counters,
        )

    def _learn_weight(self, total: int) -> None:
        for stage in progress.stages_of(self.run.stages):
            if stage.weight is None and stage.covers(self.run.phase or "") and total:
                self.weigh_stage(stage.name, total)

    def _overall(self) -> int:
        run = self.run
        if self._inner is not None:  # a run followed: its own figure is this stage's share
            fraction = min(self._inner.percent, progress.RUNNING_CEILING) / 100
        else:
            fraction = progress.phase_fraction(run)
        return progress.overall(
            progress.stages_of(run.stages), run.phase or "", fraction, run.percent
        )

    # --- the end ----------------------------------------------------------------------
    def end(self, status: str, *, only_if: dict | None = None, **fields) -> bool:
        """Moves the row to ``status`` (RunRow.transition) with ``fields``; whether it won."""
        fields.setdefault("heartbeat_at", timezone.now())
        won = self.run.transition(status, only_if=only_if, **fields)
        if self.on_progress:
            self.on_progress(self.run)
        return won

    def finish(self, status: str, **fields) -> None:
        """Writes the run's successful end, unless a cancel was asked first: then Cancelled.
        One conditional update, so a cancel is either honoured or refused (the run has ended),
        never accepted and ignored."""
        self.check(fresh=True)
        fields.setdefault("percent", 100)
        if not self.end(status, only_if={"cancel_requested": False}, **fields):
            self.heartbeat.refused_to_end()
