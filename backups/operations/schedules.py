"""Schedules: policies that take backups without anyone remembering.

A policy's next run is kept on its row; the scheduler's tick (a Celery beat task) claims due
policies with a conditional update, so two schedulers never fire one policy twice, and an edit
made in the console is seen at the next tick. What follows a policy's backup (its retention)
is operations/aftercare.py's; the retention rules are operations/retention.py's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, croniter
from django.conf import settings
from django.utils import timezone

from backups import audit
from backups.audit import Actor, Outcome
from backups.errors import BackupError, Busy, InvalidInput
from backups.models import Backup, Policy, SystemState
from backups.operations import locking, notify, records
from backups.operations.backup import request_backup
from backups.operations.delete import check_may_delete
from backups.operations.drill_schedule import validate_drill_every
from backups.operations.lookup import get_policy
from backups.operations.names import index_name_problem, validate_backup_name, validate_description
from backups.operations.requests import BackupRequest
from backups.selectors import newest_good_backup

# What a person sets on a policy: its name, and what a new machine's records carry of it.
# ("drill_every" is this console's own: a record does not carry it yet.)
POLICY_FIELDS = ("name", *records.POLICY_FIELDS, "drill_every")
# The fields that decide which backups a policy's retention deletes.
RETENTION_FIELDS = (
    "keep_last",
    "keep_min",
    "max_age_days",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
)
# A schedule that fires more often than this takes the lock most of the time: say so.
BUSY_SCHEDULE = timedelta(minutes=15)


def validate_schedule(expression: str) -> str:
    expression = " ".join((expression or "").split())
    if len(expression.split(" ")) != 5:
        raise InvalidInput(
            f"The schedule {expression!r} needs five cron fields: minute hour day month weekday "
            "(for example '0 2 * * *' for every night at 02:00)."
        )
    try:
        croniter(expression)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise InvalidInput(
            f"The schedule {expression!r} is not a valid cron expression: {exc}."
        ) from None
    return expression


def schedule_warning(expression: str, now: datetime | None = None) -> str:
    """A word on a valid schedule that will crowd everything else out ('* * * * *'); ""."""
    first = next_run_after(expression, now or timezone.now())
    second = next_run_after(expression, first)
    gap = second - first
    if gap >= BUSY_SCHEDULE:
        return ""
    minutes = max(1, int(gap.total_seconds() // 60))
    return (
        f"The schedule {expression!r} starts a backup every {minutes} minute"
        f"{'s' if minutes > 1 else ''}: each holds the operation lock while it runs, so restores "
        "and other backups wait, and retention churns. Once an hour or a night is usual."
    )


def next_run_after(expression: str, after: datetime) -> datetime:
    """The next time the cron expression fires after ``after``, read in the console's time zone."""
    zone = ZoneInfo(settings.TIME_ZONE)
    local = after.astimezone(zone).replace(second=0, microsecond=0)
    following = croniter(expression, local).get_next(datetime)
    if following.tzinfo is None:
        following = following.replace(tzinfo=zone)
    return following.astimezone(ZoneInfo("UTC"))


def backup_name_for(policy: Policy, now: datetime) -> str:
    local = timezone.localtime(now)
    try:
        name = policy.name_pattern.format(policy=policy.name, date=f"{local:%Y%m%d-%H%M%S}")
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidInput(
            f"The name pattern {policy.name_pattern!r} may use only {{policy}} and {{date}}: {exc}."
        ) from None
    validate_backup_name(name)
    unique, n = name, 1
    while Backup.objects.filter(name=unique).exists():
        n += 1
        unique = f"{name}-{n}"
    return unique


def save_policy(actor: Actor, policy_id: int | None = None, **fields) -> Policy:
    """Creates or changes a policy after checking every field; records who changed what."""
    unknown = set(fields) - set(POLICY_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown policy settings: {', '.join(sorted(unknown))}.")
    policy = Policy() if policy_id is None else get_policy(policy_id)
    before = {f: getattr(policy, f) for f in POLICY_FIELDS} if policy_id else {}
    for name, value in fields.items():
        setattr(policy, name, value)
    validate_backup_name(policy.name)
    policy.description = validate_description(policy.description, of="policy")
    policy.schedule = validate_schedule(policy.schedule)
    policy.drill_every = validate_drill_every(policy.drill_every)
    if not policy.include_elasticsearch and not policy.include_files:
        raise InvalidInput("A policy backs up Elasticsearch, files, or both: choose at least one.")
    if not isinstance(policy.index_patterns, list):
        raise InvalidInput("Index patterns are a list of index names or patterns.")
    for pattern in policy.index_patterns:
        problem = (
            index_name_problem(pattern, pattern=True) if isinstance(pattern, str) else "not text"
        )
        if problem:
            raise InvalidInput(f"{pattern!r} is not an index name or pattern A4C uses: {problem}.")
    if policy.index_patterns and not policy.include_elasticsearch:
        raise InvalidInput("Indices were chosen but Elasticsearch is left out of the policy.")
    if policy.keep_last is not None and policy.keep_last < 1:
        raise InvalidInput("'Keep at most' must be 1 or more (the newest backup is always kept).")
    if policy.keep_last is not None and policy.keep_min > policy.keep_last:
        raise InvalidInput("'Keep at least' cannot be more than 'keep at most'.")
    backup_name_for(policy, timezone.now())  # the pattern must make valid names
    if _retention_changed(before, policy):
        check_may_delete(actor, f"the retention of policy {policy.name} would delete backups")
    if Policy.objects.filter(name=policy.name).exclude(pk=policy.pk).exists():
        raise InvalidInput(f"A policy named {policy.name!r} exists already.")
    policy.next_run_at = next_run_after(policy.schedule, timezone.now())
    policy.save()
    changes = {
        f: [before.get(f), getattr(policy, f)]
        for f in POLICY_FIELDS
        if before.get(f) != getattr(policy, f)
    }
    audit.record(
        actor,
        "policy.update" if policy_id else "policy.create",
        target=policy.name,
        outcome=Outcome.SUCCEEDED,
        parameters=_jsonable(changes),
    )
    return policy


def _retention_changed(before: dict, policy: Policy) -> bool:
    """Whether this save sets a retention that the person saving it must be allowed to apply:
    any change to one, or a new policy whose retention deletes anything."""
    if before:
        return any(before[f] != getattr(policy, f) for f in RETENTION_FIELDS)
    return bool(
        policy.keep_last
        or policy.max_age_days
        or policy.keep_daily
        or policy.keep_weekly
        or policy.keep_monthly
    )


def delete_policy(policy_id: int | str, actor: Actor) -> str:
    """Removes a policy; its backups stay, as backups taken by hand do. Returns its name."""
    policy = get_policy(policy_id)
    name = policy.name
    kept = policy.backups.exclude(status=Backup.Status.DELETED).count()
    policy.delete()
    audit.record(
        actor,
        "policy.delete",
        target=name,
        outcome=Outcome.SUCCEEDED,
        message=f"Its {kept} backups stay; delete them one by one if they are not wanted.",
    )
    return name


def _jsonable(value):
    return {k: [str(x) if isinstance(x, datetime) else x for x in v] for k, v in value.items()}


def set_paused(policy_id: int, paused: bool, actor: Actor) -> Policy:
    policy = get_policy(policy_id)
    Policy.objects.filter(pk=policy.pk).update(
        paused=paused, next_run_at=next_run_after(policy.schedule, timezone.now())
    )
    audit.record(
        actor,
        "policy.pause" if paused else "policy.resume",
        target=policy.name,
        outcome=Outcome.SUCCEEDED,
    )
    policy.refresh_from_db()
    return policy


def start_due_policies(now: datetime | None = None) -> list[Backup]:
    """Claims due, unpaused policies, oldest due first, and requests their backups; the caller
    dispatches them.

    One operation runs at a time, so a policy that finds the lock taken waits its turn: it
    stays due (its next run is not moved, no failure is recorded) and a later tick starts it.
    Two policies due in the same minute therefore run one after the other."""
    now = now or timezone.now()
    started = []
    due = Policy.objects.filter(paused=False, next_run_at__lte=now).order_by("next_run_at", "pk")
    for policy in due:
        if locking.lock_holder() is not None:
            break  # everything still due waits for the operation running now
        following = next_run_after(policy.schedule, now)
        claimed = Policy.objects.filter(pk=policy.pk, next_run_at=policy.next_run_at).update(
            next_run_at=following, last_run_at=now
        )
        if claimed != 1:
            continue  # another scheduler took it
        actor = Actor.schedule(f"policy {policy.name}")
        try:
            backup = _request_policy_backup(policy, actor, now, wait_if_busy=True)
        except Busy:
            # Taken between the look and the claim: give the policy its turn back.
            Policy.objects.filter(pk=policy.pk, next_run_at=following).update(
                next_run_at=policy.next_run_at
            )
            break
        if backup is not None:
            started.append(backup)
    return started


def run_policy_now(policy_id, actor: Actor) -> Backup:
    policy = get_policy(policy_id)
    Policy.objects.filter(pk=policy.pk).update(last_run_at=timezone.now())
    backup = _request_policy_backup(policy, actor, timezone.now(), raise_busy=True)
    audit.record(
        actor, "policy.run_now", target=policy.name, outcome=Outcome.REQUESTED, backup=backup
    )
    return backup


def _request_policy_backup(
    policy: Policy, actor: Actor, now: datetime, raise_busy=False, wait_if_busy=False
) -> Backup | None:
    try:
        request = BackupRequest(
            name=backup_name_for(policy, now),
            description=f"Policy {policy.name}",
            include_elasticsearch=policy.include_elasticsearch,
            include_files=policy.include_files,
            indices=tuple(policy.index_patterns),
            trigger=Backup.Trigger.SCHEDULE if actor.source == "schedule" else None,
        )
        backup = request_backup(request, actor)
    except BackupError as exc:
        if wait_if_busy and isinstance(exc, Busy):
            raise  # the scheduler's turn to wait, not a failure to record
        Policy.objects.filter(pk=policy.pk).update(
            last_failure_at=now, last_failure_message=str(exc)
        )
        notify.notify(
            "backup.failed",
            f"Policy {policy.name} could not start a backup",
            str(exc),
            {"policy": policy.name},
        )
        if raise_busy or not isinstance(exc, Busy | InvalidInput):
            raise
        return None
    Backup.objects.filter(pk=backup.pk).update(policy=policy)
    backup.policy = policy
    return backup


def check_recent_backup(now: datetime | None = None) -> bool:
    """Alerts (once per period) when no good backup is younger than the configured age."""
    now = now or timezone.now()
    limit = timedelta(hours=settings.A4C_LAST_BACKUP_MAX_AGE_HOURS)
    last = newest_good_backup()
    newest = (last.finished_at or last.created_at) if last else None
    if newest is not None and now - newest <= limit:
        return False
    state, _ = SystemState.objects.get_or_create(key="backup-missing-alert")
    last = state.value.get("sent_at")
    if last and now - datetime.fromisoformat(last) < limit:
        return False
    age = (
        f"the newest is from {timezone.localtime(newest):%Y-%m-%d %H:%M}"
        if newest
        else "there is none"
    )
    notify.notify(
        "backup.missing",
        "No recent good backup",
        f"No backup succeeded in the last {settings.A4C_LAST_BACKUP_MAX_AGE_HOURS:g} hours; {age}.",
        {"newest": newest.isoformat() if newest else None},
    )
    SystemState.objects.filter(key="backup-missing-alert").update(
        value={"sent_at": now.isoformat()}
    )
    return True
