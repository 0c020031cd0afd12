"""Handing a run to a worker from a page: the run is queued, or taken back and the person told
why (tasks.enqueue decides both; this only turns its refusal into the sentence a page shows)."""

from __future__ import annotations

from backups import tasks
from backups.audit import Actor
from backups.errors import QueueUnavailable
from backups.models import RunKind


def hand_to_worker(kind: RunKind, run_id: int, actor: Actor) -> str:
    """ "" when a worker has it; otherwise what to tell the person (the run was taken back)."""
    try:
        tasks.enqueue(kind, run_id, actor)
    except QueueUnavailable as exc:
        return str(exc)
    return ""
