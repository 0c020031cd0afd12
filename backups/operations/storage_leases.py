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


@contextlib.contextmanager
def storage_lease(run: str) -> Iterator[HeldLease]:
    """Holds a lease for ``run`` (the operator's words for it) while the block runs; a storage
    that cannot hold one raises StorageError before anything starts."""
    lease = store().leases.take(run, settings.A4C_STORAGE_LEASE_SECONDS)
    try:
        yield lease
    finally:
        try:
            lease.release()
        except BackupError as exc:  # it expires on its own
            log.warning("the lease of %s could not be removed: %s", run, exc)


def renew(lease: HeldLease | None) -> None:
    """Keeps a lease alive (cheap: it writes at most every 30 s); a failure is logged, never
    raised into the run: a run that cannot renew is only as safe as its lease's expiry."""
    if lease is None:
        return
    try:
        lease.renew()
    except BackupError as exc:
        log.warning("the lease %s could not be renewed: %s", lease.holder, exc)
