"""Handing a run to a worker from a page: the run is queued, or taken back and the person told
why (tasks.enqueue decides both; this only turns its refusal into the sentence a page shows);
and whether a worker is there to take it, said before a form is sent and while a run waits."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest

from backups import tasks
from backups.audit import Actor
from backups.errors import QueueUnavailable
from backups.models import RunKind
from backups.web.banners import under_way

log = logging.getLogger(__name__)

START_WORKER = "bash scripts/services.sh start worker"
# How long a worker has to answer, and how long its answer (or silence) is believed: a page
# refreshed every second or two asks the broker once in a while, not at every refresh.
ANSWER_SECONDS = 0.5
BELIEVED_SECONDS = 5
_CACHE_KEY = "a4c-backup:worker-missing"


def hand_to_worker(kind: RunKind, run_id: int, actor: Actor) -> str:
    """ "" when a worker has it; otherwise what to tell the person (the run was taken back)."""
    try:
        tasks.enqueue(kind, run_id, actor)
    except QueueUnavailable as exc:
        return str(exc)
    return ""


def worker_missing() -> str:
    """ "" when a Celery worker takes tasks from the queue runs are sent to; otherwise why
    none will take a run queued now, and the command that starts one. A worker's answer is
    believed for a few seconds; its absence is asked again each time (a worker just started
    is seen at once)."""
    if cache.get(_CACHE_KEY):
        return ""
    answer = _ask()
    if not answer:
        cache.set(_CACHE_KEY, True, BELIEVED_SECONDS)
    return answer


def tell_queued(request: HttpRequest, started: str, queued: str) -> None:
    """The banner for a run just handed to the queue: ``started`` when a worker answers,
    else ``queued`` and what is missing (never "started" for a run no one will take)."""
    missing = worker_missing()
    if missing:
        messages.warning(request, f"{queued} queued: {missing}.")
    else:
        under_way(request, started)


def _ask() -> str:
    from a4c_backup.celery import app

    queue = app.conf.task_default_queue
    try:
        replies = app.control.ping(timeout=ANSWER_SECONDS)
        names = sorted(name for reply in replies for name in reply)
        consumed = {}
        if names:
            inspect = app.control.inspect(
                destination=names, timeout=ANSWER_SECONDS, limit=len(names)
            )
            consumed = inspect.active_queues() or {}
    except Exception as exc:  # noqa: BLE001 - kombu and redis raise many kinds when Redis is down
        log.warning("asking for a worker failed: %s", exc)
        return f"the queue did not answer ({exc}), so no worker can take it; start Redis"
    if any(q["name"] == queue for queues in consumed.values() for q in queues):
        return ""
    if names:
        return f"no worker takes tasks from queue {queue}; start one with `{START_WORKER}`"
    return f"no worker is running; start it with `{START_WORKER}`"
