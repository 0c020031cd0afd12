"""What only the console's pages need beyond the rows: a progress bar's caption, a page of a
list, the manifest as a download, the live indices to choose from, the audit filter's actions.

The questions about the rows themselves (what runs now, the newest good backup, the lists) are
backups/selectors.py's, shared with the commands, the doctor and /metrics. Nothing here changes
data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.paginator import Paginator
from django.utils import timezone

from backups import operations, progress, selectors
from backups.elastic import client as elastic
from backups.errors import BackupError
from backups.formatting import human_duration, measured_seconds
from backups.models import AuditAction, Backup, RestoreRun

# Every action the engine and the console write to the audit history, for the filter's list.
AUDIT_ACTIONS = AuditAction.values


@dataclass
class ProgressView:
    """What a progress bar and its caption need."""

    percent: int  # the whole run's, from its stages' real totals (backups/progress.py)
    elapsed: timedelta | None
    remaining: timedelta | None  # an estimate, from the pace so far
    stalled: bool  # no heartbeat for longer than the recovery waits
    step: tuple[int, int] | None = None  # (step number, step count) of the running phase
    to_come: tuple[str, ...] = ()  # the stages no phase has reached yet, after the phases list
    totals_known: bool = True  # False: the counters' totals are a floor, still being counted
    running: bool = False  # started and not ended

    @property
    def elapsed_text(self) -> str:
        return human_duration(self.elapsed)

    @property
    def remaining_text(self) -> str:
        if self.remaining is not None and self.remaining < timedelta(seconds=1):
            return "less than a second"
        return human_duration(self.remaining)

    @property
    def estimating(self) -> bool:
        """Running, but with no pace measured yet to say how long the rest takes."""
        return self.elapsed is not None and self.remaining is None and self.running


# The first seconds of a run measure no pace worth a promise.
ESTIMATING_SECONDS = 3


def progress_of(run: Backup | RestoreRun) -> ProgressView:
    percent = run.percent
    elapsed = run.duration
    remaining = None
    running = elapsed is not None and run.finished_at is None
    if running and 0 < percent < 100 and run.totals_known:
        # the rest of the whole run at the pace measured so far: the weights are bytes, so
        # this is a byte rate; none while the totals are still being counted
        seconds = elapsed.total_seconds()
        if seconds >= ESTIMATING_SECONDS:
            remaining = timedelta(seconds=seconds * (100 - percent) / percent)
    stages = progress.stages_of(run.stages)
    history = [p["name"] for p in getattr(run, "phases", None) or ()]
    if history:  # the page lists these phases: the counter counts the same list
        step = progress.step_position(stages, history)
        to_come = tuple(progress.steps_to_come(stages, history)) if run.is_active else ()
    else:
        step, to_come = progress.stage_position(stages, run.phase or ""), ()
    stalled = False
    if run.finished_at is None and run.status == "running" and run.heartbeat_at:
        silence = (timezone.now() - run.heartbeat_at).total_seconds()
        stalled = silence > float(settings.A4C_STALE_AFTER_SECONDS)
    return ProgressView(
        percent, elapsed, remaining, stalled, step, to_come, run.totals_known, running
    )


ES_ASKED_SECONDS = 2  # a page asks whether Elasticsearch answers, without hanging on it


def elasticsearch_problem() -> str:
    """ "" when Elasticsearch answers; otherwise why not, for a form to say before it is sent."""
    try:
        client = elastic.cluster().client.options(request_timeout=ES_ASKED_SECONDS, max_retries=0)
        elastic.Cluster(client).info()
    except BackupError as exc:
        return exc.message
    return ""


def live_indices() -> tuple[dict[str, elastic.IndexInfo], str]:
    """A4C's indices now, to choose from; with the message when Elasticsearch fails."""
    try:
        found = elastic.cluster().indices(
            include=settings.A4C_INDEX_INCLUDE, exclude=settings.A4C_INDEX_EXCLUDE
        )
    except BackupError as exc:
        return {}, exc.message
    return found, ""


def manifest_lines(backup: Backup) -> Iterator[bytes]:
    """The backup's file list as JSON lines: a header line, then one line per entry.

    Streamed from the storage, so a manifest of millions of files never sits in memory; a
    manifest found corrupt half-way ends with an error line instead of silently stopping.
    """
    header = {
        "backup": backup.name,
        "created": backup.created_at.isoformat(),
        "files": backup.file_count,
        "bytes": backup.file_bytes,
        "manifest_sha256": backup.manifest_sha256,
    }
    yield (json.dumps(header) + "\n").encode()
    try:
        for entry in operations.store().manifests.entries(backup.name):
            yield entry.line()
    except BackupError as exc:
        yield (json.dumps({"error": exc.message}) + "\n").encode()


PAGE_SIZE = 50


def page_of(request, queryset, size: int = PAGE_SIZE):
    """One page of a list, the page number taken from ?page= (a bad one gives the last page)."""
    return Paginator(queryset, size).get_page(request.GET.get("page"))


@dataclass(frozen=True)
class DrillRow:
    """One restore drill as a backup's page and the dashboard show it."""

    job: object  # the Job row
    outcome: str  # passed, failed, error, cancelled, running, pending
    badge: str  # the badge's colour, a status the stylesheet knows
    restore_time: str  # the measured time to restore, as people read it ("" when not measured)
    problems: list[str]


def drill_row(job) -> DrillRow:
    result = job.result or {}
    outcome = selectors.drill_outcome(job)
    badge = {"passed": "succeeded", "error": "failed"}.get(outcome, outcome)
    took = measured_seconds(result.get("restore_seconds"))
    problems = list(result.get("problems") or ([job.error_message] if job.error_message else []))
    return DrillRow(job, outcome, badge, took, problems)


def drill_rows(backup: Backup) -> list[DrillRow]:
    return [drill_row(job) for job in selectors.drills_of(backup)]


def proven_backup() -> DrillRow | None:
    """The newest backup a drill proved restorable, its drill and measured restore time."""
    job = selectors.newest_proven_backup()
    return drill_row(job) if job is not None else None
