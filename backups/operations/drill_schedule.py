"""When drills run by themselves: a policy's "drill every Nth backup / daily / weekly / never",
and the alarm when no drill has passed for A4C_DRILL_MAX_AGE_DAYS.

After each of a policy's good backups (operations/aftercare.py), ``mark_drill_due`` decides
whether the policy's newest good backup is to be drilled now; ``start_due_drills`` (the worker
after a backup, and every scheduler tick) requests those drills under the one operation lock
and returns them for the caller to hand to a worker. A drill never runs inside the backup's
run; when the lock is busy it waits for the next tick and the policy's row says so.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import F
from django.utils import timezone

from backups import selectors
from backups.audit import Actor
from backups.errors import BackupError, Busy, InvalidInput
from backups.models import Backup, Job, Policy, RunKind, SystemState
from backups.operations import notify
from backups.operations.drill import request_drill

NEVER, DAILY, WEEKLY = "never", "daily", "weekly"
PERIODS = {DAILY: timedelta(days=1), WEEKLY: timedelta(weeks=1)}
DRILL_ALERT_KEY = "drill-missing-alert"


def validate_drill_every(value) -> str:
    """'never', 'daily', 'weekly', or a whole number N >= 1 (every Nth backup), as stored."""
    text = str(value if value is not None else NEVER).strip().lower()
    if text in (NEVER, DAILY, WEEKLY):
        return text
    if text.isdigit() and int(text) >= 1:
        return str(int(text))
    raise InvalidInput(
        f"'Drill every' is {value!r}: give never, daily, weekly, or a number N of backups "
        "(1 drills every backup, 2 every second one)."
    )


def describe_drill_every(value: str) -> str:
    """The setting in words, for pages and the command line."""
    if value == NEVER:
        return "never"
    if value in PERIODS:
        return f"{value}: the newest good backup, when the last drill is a {value[:-2]} old"
    n = int(value)
    return "after every backup" if n == 1 else f"after every {n} backups"


def last_verdict(policy: Policy) -> Job | None:
    """The newest drill of the policy's backups that passed or failed (one that could not run
    or was cancelled says nothing of the sets)."""
    ended = Job.objects.filter(
        kind=RunKind.DRILL,
        backup__policy=policy,
        status__in=(Job.Status.SUCCEEDED, Job.Status.FAILED),
    ).order_by("-finished_at", "-id")
    return next((j for j in ended if selectors.drill_outcome(j) in ("passed", "failed")), None)


def mark_drill_due(backup: Backup, now: datetime | None = None) -> bool:
    """After a policy's good backup: counts it, and marks the policy's drill due when its
    setting says so. Returns whether a drill is (now or still) due."""
    now = now or timezone.now()
    Policy.objects.filter(pk=backup.policy_id).update(
        backups_since_drill=F("backups_since_drill") + 1
    )
    policy = Policy.objects.get(pk=backup.policy_id)
    every = policy.drill_every
    if every == NEVER:
        return False
    if policy.drill_due_at is not None:
        return True  # still waiting for the lock: the newest backup is drilled when it comes
    if every in PERIODS:
        last = last_verdict(policy)
        due = last is None or now - (last.finished_at or now) >= PERIODS[every]
    else:
        due = policy.backups_since_drill >= int(every)
    if due:
        Policy.objects.filter(pk=policy.pk, drill_due_at__isnull=True).update(drill_due_at=now)
    return due


def newest_drillable(policy: Policy) -> Backup | None:
    return (
        Backup.objects.filter(policy=policy, status=Backup.Status.SUCCEEDED, foreign=False)
        .order_by("-created_at", "-id")
        .first()
    )


def start_due_drills(now: datetime | None = None) -> list[Job]:
    """Requests the drills of policies whose drill is due, oldest due first, each under the
    operation lock; the caller hands them to a worker. A busy lock leaves the drill due (the
    next tick tries again) and says so on the policy; the backup is never failed for it."""
    now = now or timezone.now()
    started = []
    for policy in Policy.objects.filter(drill_due_at__isnull=False).order_by("drill_due_at", "pk"):
        backup = newest_drillable(policy)
        if backup is None:  # retention or a person deleted it meanwhile: nothing to drill
            Policy.objects.filter(pk=policy.pk).update(drill_due_at=None, drill_waiting="")
            continue
        holder = selectors.running_operation()
        if holder is not None:
            _waiting(policy, backup, f"{holder.kind} {holder.label} holds the operation lock")
            break
        claimed = Policy.objects.filter(pk=policy.pk, drill_due_at=policy.drill_due_at).update(
            drill_due_at=None, drill_waiting="", backups_since_drill=0
        )
        if claimed != 1:
            continue  # another scheduler took it
        try:
            job = request_drill(backup.pk, Actor.schedule(f"policy {policy.name}"))
        except Busy as exc:  # taken between the look and the claim: the drill stays due
            Policy.objects.filter(pk=policy.pk).update(
                drill_due_at=policy.drill_due_at, backups_since_drill=policy.backups_since_drill
            )
            _waiting(policy, backup, str(exc))
            break
        except BackupError as exc:
            Policy.objects.filter(pk=policy.pk).update(
                drill_waiting=f"The drill of {backup.name} could not be asked for: {exc}"
            )
            continue
        started.append(job)
    return started


def _waiting(policy: Policy, backup: Backup, why: str) -> None:
    Policy.objects.filter(pk=policy.pk).update(
        drill_waiting=f"A drill of {backup.name} is due and waits for the operation lock ({why}); "
        "the scheduler asks again at its next tick."
    )


def release_unsent_drill(job: Job) -> None:
    """A drill that could not be handed to a worker (tasks.enqueue took it back): due again."""
    Policy.objects.filter(pk=job.backup.policy_id, drill_due_at__isnull=True).update(
        drill_due_at=timezone.now()
    )


# --- the alarm: no passing drill for A4C_DRILL_MAX_AGE_DAYS --------------------------------


def check_drill_age(now: datetime | None = None) -> bool:
    """Notifies once per crossing when no drill passed within A4C_DRILL_MAX_AGE_DAYS (0: off):
    once when the newest passing drill ages past the limit, again only after a newer drill has
    passed and aged past it in turn. Returns whether it notified."""
    age = selectors.drill_age(now)
    if not age.too_old:
        SystemState.objects.filter(key=DRILL_ALERT_KEY).delete()  # the next crossing is news
        return False
    crossing = age.job.pk if age.job else None
    state, _ = SystemState.objects.get_or_create(key=DRILL_ALERT_KEY)
    if state.value.get("sent") and state.value.get("last_passing") == crossing:
        return False
    notify.notify(
        "backup.drill_missing",
        "No passing restore drill",
        age.sentence,
        {
            "last_passing_backup": age.job.backup.name if age.job else None,
            "last_passing_at": age.job.finished_at.isoformat() if age.job else None,
            "max_age_days": age.max_age_days,
        },
    )
    SystemState.objects.filter(key=DRILL_ALERT_KEY).update(
        value={
            "sent": True,
            "last_passing": crossing,
            "sent_at": (now or timezone.now()).isoformat(),
        }
    )
    return True
