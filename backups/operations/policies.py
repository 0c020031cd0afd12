"""Schedules and retention: backups that happen, and thin out, without anyone remembering.

A policy's next run is kept on its row; the scheduler's tick (a Celery beat task) claims due
policies with a conditional update, so two schedulers never fire one policy twice, and an edit
made in the console is seen at the next tick. Retention deletes whole backup sets through
delete_backup and collects unused blobs once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, croniter
from django.conf import settings
from django.utils import timezone

from backups import audit
from backups.audit import Actor
from backups.errors import BackupError, Busy, InvalidInput, NotFound
from backups.models import Backup, Policy
from backups.operations import notify
from backups.operations.backup import request_backup
from backups.operations.common import Outcome, index_name_problem, store, validate_backup_name
from backups.operations.maintenance import delete_backup

POLICY_FIELDS = (
    "name",
    "description",
    "name_pattern",
    "schedule",
    "include_elasticsearch",
    "include_files",
    "index_patterns",
    "keep_last",
    "keep_min",
    "max_age_days",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "paused",
)


# --- schedules -----------------------------------------------------------------------------


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
    policy = Policy() if policy_id is None else _get_policy(policy_id)
    before = {f: getattr(policy, f) for f in POLICY_FIELDS} if policy_id else {}
    for name, value in fields.items():
        setattr(policy, name, value)
    validate_backup_name(policy.name)
    policy.schedule = validate_schedule(policy.schedule)
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


def _jsonable(value):
    return {k: [str(x) if isinstance(x, datetime) else x for x in v] for k, v in value.items()}


def set_paused(policy_id: int, paused: bool, actor: Actor) -> Policy:
    policy = _get_policy(policy_id)
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


def _get_policy(policy_id) -> Policy:
    try:
        if isinstance(policy_id, str) and not policy_id.isdigit():
            return Policy.objects.get(name=policy_id)
        return Policy.objects.get(pk=int(policy_id))
    except (Policy.DoesNotExist, ValueError):
        raise NotFound(f"No policy {policy_id!r}.") from None


def start_due_policies(now: datetime | None = None) -> list[Backup]:
    """Claims each due, unpaused policy and requests its backup; the caller dispatches them."""
    now = now or timezone.now()
    started = []
    for policy in Policy.objects.filter(paused=False, next_run_at__lte=now):
        following = next_run_after(policy.schedule, now)
        claimed = Policy.objects.filter(pk=policy.pk, next_run_at=policy.next_run_at).update(
            next_run_at=following, last_run_at=now
        )
        if claimed != 1:
            continue  # another scheduler took it
        backup = _request_policy_backup(policy, Actor.schedule(f"policy {policy.name}"), now)
        if backup is not None:
            started.append(backup)
    return started


def run_policy_now(policy_id, actor: Actor) -> Backup:
    policy = _get_policy(policy_id)
    Policy.objects.filter(pk=policy.pk).update(last_run_at=timezone.now())
    backup = _request_policy_backup(policy, actor, timezone.now(), raise_busy=True)
    audit.record(
        actor, "policy.run_now", target=policy.name, outcome=Outcome.REQUESTED, backup=backup
    )
    return backup


def _request_policy_backup(
    policy: Policy, actor: Actor, now: datetime, raise_busy=False
) -> Backup | None:
    try:
        backup = request_backup(
            actor,
            name=backup_name_for(policy, now),
            description=f"Policy {policy.name}",
            include_elasticsearch=policy.include_elasticsearch,
            include_files=policy.include_files,
            indices=policy.index_patterns,
            trigger=Backup.Trigger.SCHEDULE if actor.source == "schedule" else None,
        )
    except BackupError as exc:
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


def record_policy_outcome(backup: Backup) -> None:
    """Called when a policy's backup ends: the policy's last success or failure."""
    if backup.policy_id is None:
        return
    if backup.status == Backup.Status.SUCCEEDED:
        duration = backup.duration.total_seconds() if backup.duration else None
        Policy.objects.filter(pk=backup.policy_id).update(
            last_success_at=backup.finished_at, last_duration_seconds=duration
        )
    else:
        Policy.objects.filter(pk=backup.policy_id).update(
            last_failure_at=backup.finished_at or timezone.now(),
            last_failure_message=backup.error_message,
        )


# --- retention -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    backup: Backup
    delete: bool
    reason: str


def retention_verdicts(
    policy: Policy, backups: list[Backup], newest_good_id: int | None, now: datetime
):
    """The retention rules of Policy's docstring, applied to backups; a verdict for each."""
    ordered = sorted(backups, key=lambda b: (b.created_at, b.id), reverse=True)
    tiers = {"day": policy.keep_daily, "week": policy.keep_weekly, "month": policy.keep_monthly}
    reasons: dict[int, str] = {}
    if any(tiers.values()):
        for tier, count in tiers.items():
            seen: list[tuple] = []
            for backup in ordered:
                key = _bucket(backup.created_at, tier)
                if key not in seen and len(seen) < count:
                    seen.append(key)
                    reasons.setdefault(backup.pk, f"newest of its {tier}")
    else:
        reasons = {b.pk: "within the policy" for b in ordered}
    if policy.max_age_days:
        cutoff = now - timedelta(days=policy.max_age_days)
        reasons = {pk: r for pk, r in reasons.items() if _by_pk(ordered, pk).created_at >= cutoff}
    wanted = [b for b in ordered if b.pk in reasons]
    if policy.keep_last:
        wanted = wanted[: policy.keep_last]
    kept = {b.pk: reasons[b.pk] for b in wanted}
    for backup in ordered:
        if len(kept) >= policy.keep_min:
            break
        kept.setdefault(backup.pk, f"keep at least {policy.keep_min}")
    verdicts = []
    for backup in ordered:
        if backup.pinned:
            verdicts.append(Verdict(backup, False, "pinned"))
        elif backup.pk == newest_good_id:
            verdicts.append(Verdict(backup, False, "the newest good backup"))
        elif backup.pk in kept:
            verdicts.append(Verdict(backup, False, kept[backup.pk]))
        else:
            verdicts.append(Verdict(backup, True, _why_it_goes(policy, backup, now)))
    return verdicts


def _bucket(moment: datetime, tier: str) -> tuple:
    local = timezone.localtime(moment)
    if tier == "day":
        return (local.year, local.month, local.day)
    if tier == "week":
        return tuple(local.isocalendar()[:2])
    return (local.year, local.month)


def _by_pk(backups, pk):
    return next(b for b in backups if b.pk == pk)


def _why_it_goes(policy: Policy, backup: Backup, now: datetime) -> str:
    if policy.max_age_days and backup.created_at < now - timedelta(days=policy.max_age_days):
        return f"older than {policy.max_age_days} days"
    if any((policy.keep_daily, policy.keep_weekly, policy.keep_monthly)):
        return "not the newest of a kept day, week or month"
    return f"beyond the {policy.keep_last} newest"


def retention_preview(policy_id, now: datetime | None = None) -> list[Verdict]:
    """Exactly what apply_retention would delete now (verdicts with delete=True) and why."""
    policy = _get_policy(policy_id)
    now = now or timezone.now()
    backups = list(policy.backups.filter(status=Backup.Status.SUCCEEDED))
    newest_good = (
        Backup.objects.filter(status=Backup.Status.SUCCEEDED)
        .exclude(trigger=Backup.Trigger.SAFETY)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
        .first()
    )
    if not any(
        (
            policy.keep_last,
            policy.max_age_days,
            policy.keep_daily,
            policy.keep_weekly,
            policy.keep_monthly,
        )
    ):
        return [Verdict(b, False, "the policy keeps everything") for b in backups]
    return retention_verdicts(policy, backups, newest_good, now)


def apply_retention(policy_id, actor: Actor, now: datetime | None = None) -> list[str]:
    """Deletes what the preview lists, then collects the blobs no manifest uses any more."""
    policy = _get_policy(policy_id)
    doomed = [v for v in retention_preview(policy.pk, now) if v.delete]
    deleted = _delete_all(doomed, actor)
    if doomed:
        audit.record(
            actor,
            "retention.apply",
            target=policy.name,
            outcome=Outcome.SUCCEEDED,
            parameters={"deleted": deleted, "reasons": {v.backup.name: v.reason for v in doomed}},
        )
    return deleted


def safety_backups_to_prune() -> list[Backup]:
    """Safety backups beyond the newest A4C_SAFETY_BACKUPS_KEEP (pinned ones stay)."""
    safety = Backup.objects.filter(
        trigger=Backup.Trigger.SAFETY, status=Backup.Status.SUCCEEDED, pinned=False
    )
    return list(safety.order_by("-created_at", "-id")[settings.A4C_SAFETY_BACKUPS_KEEP :])


def prune_safety_backups(actor: Actor) -> list[str]:
    doomed = [Verdict(b, True, "beyond the safety backups kept") for b in safety_backups_to_prune()]
    return _delete_all(doomed, actor)


def _delete_all(doomed: list[Verdict], actor: Actor) -> list[str]:
    deleted = []
    for verdict in doomed:
        delete_backup(verdict.backup.pk, actor, collect=False)
        deleted.append(verdict.backup.name)
    if deleted:
        freed = store().collect_garbage()
        audit.record(
            actor,
            "storage.collect",
            outcome=Outcome.SUCCEEDED,
            parameters={"blobs_removed": freed.blobs_removed, "bytes_freed": freed.bytes_freed},
        )
    return deleted


def after_policy_backup(backup_id: int) -> list[str]:
    """What follows a scheduled backup: the policy's record, its retention, the safety limit."""
    backup = Backup.objects.select_related("policy").get(pk=backup_id)
    record_policy_outcome(backup)
    if backup.policy_id is None or backup.status != Backup.Status.SUCCEEDED:
        return []
    actor = Actor.schedule(f"policy {backup.policy.name}")
    return apply_retention(backup.policy_id, actor) + prune_safety_backups(actor)


def check_recent_backup(now: datetime | None = None) -> bool:
    """Alerts (once per period) when no good backup is younger than the configured age."""
    from backups.models import SystemState

    now = now or timezone.now()
    limit = timedelta(hours=settings.A4C_LAST_BACKUP_MAX_AGE_HOURS)
    newest = (
        Backup.objects.filter(status=Backup.Status.SUCCEEDED)
        .exclude(trigger=Backup.Trigger.SAFETY)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
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
