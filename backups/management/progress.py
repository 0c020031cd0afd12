"""How a command shows a run's progress: a bar with an ETA on a terminal (rich), plain lines in
a log, JSON lines with --json. Operations call the reporter for every file, so it returns at
once unless the phase changed or its interval passed."""

from __future__ import annotations

import json
import time

from django.utils import timezone

from backups.models import Backup, RunKind
from backups.sizes import format_size

LINE_EVERY = 5.0  # seconds between plain progress lines within one phase
JSON_EVERY = 1.0
BAR_EVERY = 0.1


def label(run) -> str:
    return (
        f"backup {run.name}"
        if isinstance(run, Backup)
        else f"restore #{run.pk} of {run.backup.name}"
    )


def counters(run) -> str:
    """The counters of the phase running now; earlier phases' numbers would mislead."""
    phase = run.phase or ""
    parts = []
    floor = "" if run.totals_known else "at least "  # a total still being counted
    if phase.startswith("files") and run.files_total:
        parts.append(f"{run.files_done}/{floor}{run.files_total} files")
    elif phase.startswith("elasticsearch") and run.shards_total:
        parts.append(f"{run.shards_done}/{floor}{run.shards_total} shards")
    else:
        return ""
    if run.bytes_total:
        parts.append(f"{format_size(run.bytes_done)} of {floor}{format_size(run.bytes_total)}")
    return ", ".join(parts)


class Reporter:
    """The progress callback of a run: a bar, plain lines or JSON lines, throttled."""

    def __init__(self, out, mode: str):
        self.out = out
        self.mode = mode  # "bar", "lines" or "json"
        self._phase = None
        self._last = 0.0
        self._progress = None  # a rich Progress, made at the first bar
        self._task = None

    @classmethod
    def for_options(cls, out, options: dict) -> Reporter:
        if options.get("json"):
            return cls(out, "json")
        return cls(out, "bar" if out.isatty() else "lines")

    def __call__(self, run) -> None:
        now = time.monotonic()
        changed = run.phase != self._phase
        every = {"bar": BAR_EVERY, "lines": LINE_EVERY, "json": JSON_EVERY}[self.mode]
        if not changed and now - self._last < every:
            return
        self._phase, self._last = run.phase, now
        getattr(self, f"_{self.mode}")(run, changed)

    def _bar(self, run, changed: bool) -> None:
        if self._progress is None:
            # rich only for a bar on a terminal: a script's command does not import it
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            # Django's OutputWrapper adds a newline to each write; rich writes to the stream.
            console = Console(file=getattr(self.out, "_out", self.out), force_terminal=True)
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=30),
                TaskProgressColumn(),
                TextColumn("{task.fields[counters]}"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._progress.start()
        if self._task is None:
            # One bar for the whole run: its percentage never restarts (backups/progress.py).
            self._task = self._progress.add_task(run.phase or run.status, total=100, counters="")
        self._progress.update(
            self._task,
            completed=run.percent,
            description=run.phase or run.status,
            counters=counters(run),
        )

    def _lines(self, run, changed: bool) -> None:
        detail = counters(run)
        percent = f" {run.percent}%" if run.percent else ""
        stamp = timezone.localtime().strftime("%H:%M:%S")
        text = f"{stamp} {label(run)}: {run.phase or run.status}{percent}"
        self.out.write(text + (f" ({detail})" if detail else ""))

    def _json(self, run, changed: bool) -> None:
        event = {
            "event": "progress",
            "kind": RunKind.BACKUP if isinstance(run, Backup) else RunKind.RESTORE,
            "id": run.pk,
            "status": run.status,
            "phase": run.phase,
            "percent": run.percent,
        }
        for name in ("files", "bytes", "shards"):
            event[f"{name}_done"] = getattr(run, f"{name}_done")
            event[f"{name}_total"] = getattr(run, f"{name}_total")
        self.out.write(json.dumps(event))

    def message(self, text: str) -> None:
        """A note between progress updates; kept out of --json's stdout."""
        if self.mode == "json":
            return
        self.finish()
        self.out.write(text)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None
