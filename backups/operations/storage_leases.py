"""A run's lease on the backup storage, taken for as long as the run writes blobs or relies on
them staying, so that no console sharing the storage collects them meanwhile.

The lease file and the rule collectors follow are the storage's (backups/storage/leases.py);
this module says when a run holds one: lifecycle.run holds it around every run's steps (the
heartbeat renews it), an import around its unpacking. A4C_STORAGE_LEASE_SECONDS is how long a
lease outlives its last renewal: a dead run's lease is ignored once that has passed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from django.conf import settings

from backups.errors import BackupError
from backups.operations.places import store
from backups.storage import HeldLease

log = logging.getLogger("backups.operations")


def take(run: str) -> HeldLease:
    """A new lease for ``run`` (the operator's words for it); StorageError when the storage
    cannot hold one (then the run must not start)."""
    return store().leases.take(run, settings.A4C_STORAGE_LEASE_SECONDS)


def release(lease: HeldLease) -> None:
    """Removes the lease; a failure is logged (the lease expires on its own)."""
    try:
        lease.release()
    except BackupError as exc:
        log.warning("the lease %s could not be removed: %s", lease.holder, exc)


@contextlib.contextmanager
def storage_lease(run: str) -> Iterator[HeldLease]:
    """Holds a lease for ``run`` while the block runs."""
    lease = take(run)
    try:
        yield lease
    finally:
        release(lease)


def renew(lease: HeldLease | None) -> None:
    """Keeps a lease alive (cheap: it writes at most every 30 s); a failure is logged, never
    raised into the run: a run that cannot renew is only as safe as its lease's expiry."""
    if lease is None:
        return
    try:
        lease.renew()
    except BackupError as exc:
        log.warning("the lease %s could not be renewed: %s", lease.holder, exc)
