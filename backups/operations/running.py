"""The machinery every long operation shares: the heartbeat, progress and cancel.

The lock is operations/locking.py's. A running operation keeps
a heartbeat on its row from a background thread; recovery (operations.recover_stale_runs) takes
a row whose heartbeat stopped for a dead worker.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.utils import timezone

from backups import progress
from backups.errors import Cancelled

# What a long operation is told as it goes: the run row, read back after each update.
ProgressCallback = Callable[[object], None] | None


def short_trace() -> str:
    """The end of the current exception's traceback, as kept on a run row's error detail."""
    return "".join(traceback.format_exc(limit=8))[-6000:]


# How often check() reads the row for a cancel request between phase boundaries.
CANCEL_POLL_SECONDS = 0.5


class Runner:
    """Reports one running operation onto its row: phase, counters, heartbeat, cancel.

    Only named fields are written (queryset updates), so a cancel request written by someone
    else is never overwritten by a progress update.
    """

    def __init__(self, run, on_progress: Callable[[object], None] | None = None):
        self.run = run
        self.model = type(run)
        self.on_progress = on_progress
        self._last_write = 0.0
        self._stop = threading.Event()
        self._cancelled = threading.Event()
        self.cancellable = True  # False once a rollback has begun: it must run to its end
        self._thread: threading.Thread | None = None
        # The row is asked about a cancel from this thread only (file copies call check() from
        # their own threads, which have no database connection of their own to spend).
        self._owner = threading.get_ident()
        self._last_poll = 0.0
        self._stage_phase = ""  # the phase named by phase(), which follow() details
        self._inner = None  # the run followed inside the current phase, if any

    # --- heartbeat ------------------------------------------------------------------
    def __enter__(self) -> Runner:
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat-{self.run.pk}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(settings.A4C_HEARTBEAT_SECONDS):
                self.model.objects.filter(pk=self.run.pk).update(heartbeat_at=timezone.now())
                if self.model.objects.filter(pk=self.run.pk, cancel_requested=True).exists():
                    self._cancelled.set()
        finally:
            connection.close()

    # --- reporting ------------------------------------------------------------------
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

    COUNTERS = (
        "shards_done",
        "shards_total",
        "bytes_done",
        "bytes_total",
        "files_done",
        "files_total",
    )

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
            fields.update(dict.fromkeys(self.COUNTERS, 0))
        if hasattr(self.run, "phases"):
            now = timezone.now().isoformat()
            phases = [dict(p) for p in self.run.phases]
            if phases and not phases[-1].get("finished"):
                phases[-1]["finished"] = now
            phases.append({"name": name, "started": now})
            fields["phases"] = phases
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
        # a backup's figures fill in as it goes (its page's tiles), the end writes them whole
        tiles = {"file_count": p.files_done, "file_bytes": p.bytes_done, "new_bytes": p.new_bytes}
        self.progress(
            files_done=p.files_done,
            files_total=p.files_total,
            bytes_done=p.bytes_done,
            bytes_total=p.bytes_total,
            **(tiles if hasattr(self.run, "new_bytes") else {}),
        )

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
        self.progress(phase=f"{self._stage_phase}: {inner.phase}"[:40], **counters)

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

    def flush(self, **counters) -> None:
        for name, value in counters.items():
            setattr(self.run, name, value)
        self.update(**{k: getattr(self.run, k) for k in self.COUNTERS})

    def check(self, *, fresh: bool = False) -> None:
        """Raises Cancelled once someone asked this run to stop.

        The heartbeat notices a request every few seconds; a run that ends sooner must not
        succeed over it, so the row is also read here, at most twice a second, and always when
        ``fresh`` (phase boundaries, the moment before success)."""
        if not self.cancellable:
            return
        due = fresh or time.monotonic() - self._last_poll >= CANCEL_POLL_SECONDS
        if not self._cancelled.is_set() and due and threading.get_ident() == self._owner:
            self._last_poll = time.monotonic()
            if self.model.objects.filter(pk=self.run.pk, cancel_requested=True).exists():
                self._cancelled.set()
        if self._cancelled.is_set():
            raise Cancelled(f"Cancelled at the {self.run.phase or 'start'} phase, as requested.")

    def finish(self, **fields) -> None:
        """Writes the run's successful end, unless a cancel was asked first: then Cancelled.
        One conditional update, so a cancel is either honoured or refused (the run has ended),
        never accepted and ignored."""
        self.check(fresh=True)
        fields.setdefault("heartbeat_at", timezone.now())
        fields.setdefault("percent", 100)
        ended = self.model.objects.filter(pk=self.run.pk, cancel_requested=False).update(**fields)
        if not ended:
            self._cancelled.set()
            self.check()
        for name, value in fields.items():
            setattr(self.run, name, value)
        if self.on_progress:
            self.on_progress(self.run)
