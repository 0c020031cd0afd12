"""Claiming the one lock every data-changing operation needs, with its run row, or neither.

The lock itself is operations/running.py's; this module adds the run row and the wait, and
asks recovery to free a lock whose holder died before giving up."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from backups.audit import Actor
from backups.errors import (
    Busy,
)
from backups.models import (
    OperationLock,
)
from backups.operations import running
from backups.operations.recovery import recover_stale_runs


def lock_holder() -> OperationLock | None:
    return running.lock_holder()


def claim(kind: str, run, label: str, actor: Actor, wait: float) -> None:
    running.acquire(kind, run.pk, label, actor.name, wait=wait, recover=recover_stale_runs)


def create_claimed(
    kind: str,
    label: str,
    actor: Actor,
    model,
    fields: dict,
    *,
    wait: float,
    refused: Callable[[Busy], None],
):
    """Creates the run row (fields, and who asked) and takes the lock for it, or neither.

    While the lock is held by another operation, tries again until ``wait`` seconds are up;
    then calls ``refused`` (to audit the refusal) and raises Busy naming the holder.
    """
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        try:
            with transaction.atomic():
                run = model.objects.create(
                    **fields,
                    requested_by=actor.user,
                    actor=actor.name,
                    source=actor.source,
                    heartbeat_at=timezone.now(),
                )
                claim(kind, run, label, actor, 0)
            return run
        except Busy as busy:
            if time.monotonic() >= deadline:
                refused(busy)
                raise
        while running.lock_holder() is not None and time.monotonic() < deadline:
            time.sleep(0.5)
