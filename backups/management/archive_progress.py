"""Progress of an export or import on stderr: a line redrawn on a terminal, else every 5 s."""

import time

from backups.sizes import format_size

LINE_EVERY = 5.0


class ArchiveReporter:
    def __init__(self, err, doing: str, *, quiet: bool = False):
        self.err, self.doing, self.quiet = err, doing, quiet
        self.tty = hasattr(err, "isatty") and err.isatty()
        self.last, self.latest = 0.0, None

    def __call__(self, progress) -> None:
        self.latest = progress
        now = time.monotonic()
        if self.quiet or (not self.tty and now - self.last < LINE_EVERY):
            return
        self.last = now
        self._show(progress, ending="" if self.tty else "\n")

    def _show(self, progress, ending: str) -> None:
        done, total = progress.bytes_done, progress.bytes_total
        percent = int(100 * done / total) if total else 100
        text = f"{self.doing}: {percent}% ({format_size(done)} of {format_size(total)})"
        self.err.write(f"\r{text}" if self.tty else text, ending=ending)
        self.err.flush()

    def end(self) -> None:
        if self.latest is not None and not self.quiet:
            self._show(self.latest, ending="\n")
