"""The one lock every data-changing operation needs: claiming it, waiting for it, freeing it.

The lock is one database row claimed by a conditional UPDATE, so two web requests, a command
and a worker cannot both change data, whatever process they run in. This module owns the lock
and the only wait for it; it knows no run kind and never ends a run: recovery (passed in as
``recover``) is what frees a lock whose holder died. Who holds it is asked of
selectors.lock_holder(), the one reading of the lock's row."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from django.db import transaction
from django.utils import timezone

from backups.audit import Actor
from backups.errors import Busy
from backups.models import OperationLock
from backups.selectors import lock_holder

# How often a caller that waits for the lock looks again.
WAIT_POLL_SECONDS = 0.5

T = TypeVar("T")


def try_acquire(kind: str, run_id: int, label: str, actor: str) -> bool:
    OperationLock.objects.get_or_create(pk=1)
    claimed = OperationLock.objects.filter(pk=1, kind="").update(
        kind=kind, run_id=run_id, label=label, actor=actor, acquired_at=timezone.now()
    )
    return claimed == 1


def busy_error(lock: OperationLock | None) -> Busy:
    if lock is None:
        return Busy("Another operation was holding the lock a moment ago; try again.")
    since = (
        timezone.localtime(lock.acquired_at).strftime("%Y-%m-%d %H:%M:%S %Z")
        if lock.acquired_at
        else "?"
    )
    return Busy(
        f"Another operation is running: {lock.kind} {lock.label} started by {lock.actor} "
        f"at {since}. Wait for it to finish, or cancel it."
    )


def release(kind: str, run_id: int) -> bool:
    return (
        OperationLock.objects.filter(pk=1, kind=kind, run_id=run_id).update(
            kind="", run_id=None, label="", actor="", acquired_at=None
        )
        == 1
    )


def wait_for_lock(
    attempt: Callable[[], T | None],
    *,
    wait: float = 0.0,
    recover: Callable[[], object] | None = None,
) -> T:
    """Calls ``attempt`` until it returns something (it claimed the lock); the one wait.

    After the first refusal ``recover`` frees a dead holder, once; then the attempt is made
    again every half second until ``wait`` seconds are up, and Busy names the holder."""
    deadline = time.monotonic() + max(wait, 0.0)
    recovered = False
    while True:
        claimed = attempt()
        if claimed is not None:
            return claimed
        if recover is not None and not recovered:
            recover()  # a dead holder is released here, once
            recovered = True
            continue
        if time.monotonic() >= deadline:
            raise busy_error(lock_holder())
        time.sleep(WAIT_POLL_SECONDS)


def acquire(
    kind: str,
    run_id: int,
    label: str,
    actor: str,
    *,
    wait: float = 0.0,
    recover: Callable[[], object] | None = None,
) -> None:
    """Claims the lock or raises Busy naming the holder; with ``wait``, polls that long first."""

    def attempt() -> bool | None:
        return try_acquire(kind, run_id, label, actor) or None

    wait_for_lock(attempt, wait=wait, recover=recover)


def create_claimed(
    kind: str,
    label: str,
    actor: Actor,
    model,
    fields: dict,
    *,
    wait: float,
    refused: Callable[[Busy], None],
    recover: Callable[[], object] | None,
):
    """Creates the run row (fields, and who asked) and takes the lock for it, or neither.

    While the lock is held by another operation, tries again until ``wait`` seconds are up;
    then calls ``refused`` (to audit the refusal) and raises Busy naming the holder.
    """

    class NotClaimed(Exception):
        pass

    def attempt():
        try:
            with transaction.atomic():  # the row exists only if the lock was taken for it
                run = model.objects.create(
                    **fields,
                    requested_by=actor.user,
                    actor=actor.name,
                    source=actor.source,
                    heartbeat_at=timezone.now(),
                )
                if not try_acquire(kind, run.pk, label, actor.name):
                    raise NotClaimed
            return run
        except NotClaimed:
            return None

    try:
        return wait_for_lock(attempt, wait=wait, recover=recover)
    except Busy as busy:
        refused(busy)
        raise
