"""A running operation's pulse: the heartbeat written onto its row from a background thread,
and the cancel request read back from it.

Recovery (operations/recovery.py) takes a row whose heartbeat stopped for a dead worker. This
module writes nothing but ``heartbeat_at`` (and renews the run's storage lease); progress is
operations/running.py's."""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

from backups.errors import Cancelled
from backups.operations import storage_leases

# How often check() reads the row for a cancel request between phase boundaries.
CANCEL_POLL_SECONDS = 0.5


class Heartbeat:
    """Beats on the run's row while entered, and says when someone asked the run to stop."""

    def __init__(self, run):
        self.run = run
        self.model = type(run)
        self._stop = threading.Event()
        self._cancelled = threading.Event()
        self.cancellable = True  # False once a rollback has begun: it must run to its end
        self._thread: threading.Thread | None = None
        # The row is asked about a cancel from this thread only (file copies call check() from
        # their own threads, which have no database connection of their own to spend).
        self._owner = threading.get_ident()
        self._last_poll = 0.0
        # the run's lease on the backup storage, renewed with each beat (storage_leases.py)
        self.lease = None

    def __enter__(self) -> Heartbeat:
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
                storage_leases.renew(self.lease)
                if self._asked_to_stop():
                    self._cancelled.set()
        finally:
            connection.close()

    def _asked_to_stop(self) -> bool:
        return self.model.objects.filter(pk=self.run.pk, cancel_requested=True).exists()

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
            if self._asked_to_stop():
                self._cancelled.set()
        if self._cancelled.is_set():
            raise Cancelled(f"Cancelled at the {self.run.phase or 'start'} phase, as requested.")

    def refused_to_end(self) -> None:
        """The row refused the run's end: a cancel was asked first, and wins."""
        self._cancelled.set()
        self.check()
