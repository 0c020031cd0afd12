"""Retention: which backups a rule keeps, which it deletes and why, and deleting them.

The one engine behind a policy's retention (applied after each of its backups, previewed and
applied from its page and `manage.py policy retention`) and `manage.py prune`. ``select`` is a
pure function over plain values; ``delete_backups`` is the one path by which retention deletes,
each backup through delete_backup, the unused blobs collected once at the end.

A rule, applied to the succeeded backups taken on purpose ("good" backups), in this order:

1. with calendar tiers (daily / weekly / monthly), only the newest backup of each of the last
   N days, ISO weeks and months is wanted; without tiers, all of them are;
2. backups older than ``max_age`` are no longer wanted;
3. ``keep_last`` keeps the newest N of what is left;
4. ``keep_min`` adds back the newest others until M are kept;
5. whatever else is asked, a pinned backup, one the caller protects (the safety backup the
   newest restore would roll back to) and the newest good backup of all are kept.

Other finished backups (failed, cancelled, and the safety backups taken before restores, which
hold only what that restore overwrote) never count as one of the N. They are kept while they
are newer than the oldest good backup kept, or younger than ``max_age``, or while fewer good
backups exist than the rule asks for: a string of failures never pushes good backups out.

Foreign sets (no key trusted here vouches for them: operations/signing.py) are never looked at:
they neither count as one of the N nor are deleted by a rule; a person deletes them by name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from backups import audit
from backups.audit import Actor, Outcome
from backups.errors import BackupError, Busy, InvalidInput
from backups.models import Backup, Policy, RestoreRun
from backups.operations.delete import delete_backup
from backups.operations.lookup import get_policy
from backups.operations.offsite import retire_copies
from backups.operations.places import store
from backups.selectors import newest_good_backup

log = logging.getLogger("backups.operations")

CONSIDERED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Rule:
    keep_last: int = 0
    keep_min: int = 0
    max_age: timedelta | None = None
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    @classmethod
    def of_policy(cls, policy: Policy) -> Rule:
        return cls(
            keep_last=policy.keep_last or 0,
            keep_min=policy.keep_min or 0,
            max_age=timedelta(days=policy.max_age_days) if policy.max_age_days else None,
            daily=policy.keep_daily or 0,
            weekly=policy.keep_weekly or 0,
            monthly=policy.keep_monthly or 0,
        )

    @classmethod
    def of_prune(cls, keep_last: int | None, older_than: timedelta | None) -> Rule:
        """`prune --keep-last N --older-than D`: with both, a backup goes only when both allow."""
        if keep_last is None and older_than is None:
            raise InvalidInput("say what to keep: --keep-last N, --older-than DAYS, or both")
        if keep_last is not None and keep_last < 1:
            raise InvalidInput("--keep-last must be 1 or more (the newest backup is always kept)")
        if older_than is not None and older_than <= timedelta(0):
            raise InvalidInput("--older-than must be more than 0 days")
        if older_than is None:
            return cls(keep_last=keep_last or 0)
        return cls(keep_min=keep_last or 0, max_age=older_than)

    @property
    def tiers(self) -> dict[str, int]:
        return {"day": self.daily, "week": self.weekly, "month": self.monthly}

    @property
    def keeps_everything(self) -> bool:
        return not (self.keep_last or self.max_age or any(self.tiers.values()))

    @property
    def wants_at_least(self) -> int:
        return max(self.keep_last, self.keep_min)


@dataclass(frozen=True)
class Candidate:
    """A backup as retention sees it."""

    id: int
    name: str
    status: str
    created_at: datetime
    pinned: bool = False
    safety: bool = False  # taken automatically before a restore
    protected: str = ""  # why the caller wants it kept, or empty

    @property
    def pk(self) -> int:
        return self.id

    @property
    def good(self) -> bool:
        return self.status == Backup.Status.SUCCEEDED and not self.safety

    @classmethod
    def of(cls, backup: Backup, protected: str = "") -> Candidate:
        return cls(
            id=backup.pk,
            name=backup.name,
            status=backup.status,
            created_at=backup.created_at,
            pinned=backup.pinned,
            safety=backup.trigger == Backup.Trigger.SAFETY,
            protected=protected,
        )


@dataclass(frozen=True)
class Verdict:
    backup: Candidate
    delete: bool
    reason: str


def select(
    candidates: Iterable[Candidate],
    rule: Rule,
    *,
    now: datetime,
    newest_good_id: int | None = None,
) -> list[Verdict]:
    """A verdict per finished backup, newest first; running and deleted ones are left out."""
    ordered = sorted(
        (c for c in candidates if c.status in CONSIDERED),
        key=lambda c: (c.created_at, c.id),
        reverse=True,
    )
    if rule.keeps_everything:
        return [Verdict(c, False, "the rule keeps everything") for c in ordered]
    good = [c for c in ordered if c.good]
    kept = _kept_good(good, rule, now)
    oldest_kept = min((c.created_at for c in good if c.id in kept), default=None)
    verdicts = []
    for candidate in ordered:
        reason = _always_kept(candidate, newest_good_id)
        if not reason and candidate.good:
            reason = kept.get(candidate.id, "")
        elif not reason:
            reason = _other_kept(candidate, rule, now, oldest_kept, len(good))
        if reason:
            verdicts.append(Verdict(candidate, False, reason))
        else:
            verdicts.append(Verdict(candidate, True, _why_it_goes(candidate, rule, now)))
    return verdicts


def _kept_good(good: list[Candidate], rule: Rule, now: datetime) -> dict[int, str]:
    """Rules 1 to 4 on the good backups (newest first): the kept ones by id, with why."""
    reasons: dict[int, str] = {}
    if any(rule.tiers.values()):
        for tier, count in rule.tiers.items():
            seen: list[tuple] = []
            for backup in good:
                key = _bucket(backup.created_at, tier)
                if key not in seen and len(seen) < count:
                    seen.append(key)
                    reasons.setdefault(backup.id, f"newest of its {tier}")
    else:
        reasons = {b.id: "within the rule" for b in good}
    if rule.max_age:
        cutoff = now - rule.max_age
        young = {b.id for b in good if b.created_at >= cutoff}
        reasons = {pk: f"younger than {_days(rule.max_age)}" for pk in reasons if pk in young}
    wanted = [b for b in good if b.id in reasons]
    if rule.keep_last:
        wanted = wanted[: rule.keep_last]
        reasons = {
            b.id: reasons[b.id]
            if any(rule.tiers.values()) or rule.max_age
            else f"one of the {rule.keep_last} newest succeeded backups"
            for b in wanted
        }
    kept = {b.id: reasons[b.id] for b in wanted}
    for backup in good:
        if len(kept) >= rule.keep_min:
            break
        kept.setdefault(backup.id, f"one of the {rule.keep_min} newest kept at least")
    return kept


def _always_kept(candidate: Candidate, newest_good_id: int | None) -> str:
    if candidate.pinned:
        return "pinned"
    if candidate.protected:
        return candidate.protected
    if candidate.id == newest_good_id:
        return "the newest good backup"
    return ""


def _other_kept(
    candidate: Candidate, rule: Rule, now: datetime, oldest_kept: datetime | None, good: int
) -> str:
    if good < rule.wants_at_least:
        return f"fewer than {rule.wants_at_least} succeeded backups exist"
    if oldest_kept is not None and candidate.created_at > oldest_kept:
        return "newer than the oldest backup kept"
    if rule.max_age and candidate.created_at >= now - rule.max_age:
        return f"younger than {_days(rule.max_age)}"
    return ""


def _why_it_goes(candidate: Candidate, rule: Rule, now: datetime) -> str:
    kind = "safety backup, " if candidate.safety else ""
    status = "" if candidate.status == Backup.Status.SUCCEEDED else f"{candidate.status}, "
    if rule.max_age and candidate.created_at < now - rule.max_age:
        why = f"older than {_days(rule.max_age)}"
    elif any(rule.tiers.values()):
        why = "not the newest of a kept day, week or month"
    else:
        count = rule.wants_at_least
        why = f"older than the {count} newest succeeded backup{'s' if count != 1 else ''}"
    return f"{kind}{status}{why}"


def _bucket(moment: datetime, tier: str) -> tuple:
    local = timezone.localtime(moment)
    if tier == "day":
        return (local.year, local.month, local.day)
    if tier == "week":
        return tuple(local.isocalendar()[:2])
    return (local.year, local.month)


def _days(value: timedelta) -> str:
    days = value.total_seconds() / 86400
    return f"{days:g} day{'s' if days != 1 else ''}"


def to_delete(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """The backups that go, oldest first (the order they are deleted in)."""
    return sorted(
        (v for v in verdicts if v.delete), key=lambda v: (v.backup.created_at, v.backup.id)
    )


# --- the rows retention looks at -------------------------------------------------------------


def newest_good_backup_id() -> int | None:
    newest = newest_good_backup()
    return newest.pk if newest else None


def protected_backups() -> dict[int, str]:
    """The safety backup the newest restore would roll back to: a rollback needs it."""
    newest_restore = (
        RestoreRun.objects.exclude(safety_backup=None).order_by("-created_at", "-id").first()
    )
    if newest_restore is None:
        return {}
    return {
        newest_restore.safety_backup_id: (
            f"safety backup of the newest restore (#{newest_restore.pk}): a rollback needs it"
        )
    }


def prune_preview(keep_last: int | None, older_than: timedelta | None, now=None) -> list[Verdict]:
    """What `manage.py prune` would delete: every finished backup under one rule."""
    rule = Rule.of_prune(keep_last, older_than)
    protected = protected_backups()
    rows = Backup.objects.filter(status__in=CONSIDERED, foreign=False)
    return select(
        [Candidate.of(b, protected.get(b.pk, "")) for b in rows],
        rule,
        now=now or timezone.now(),
        newest_good_id=newest_good_backup_id(),
    )


def retention_preview(policy_id, now: datetime | None = None) -> list[Verdict]:
    """Exactly what apply_retention would delete now (verdicts with delete=True) and why."""
    policy = get_policy(policy_id)
    rule = Rule.of_policy(policy)
    backups = policy.backups.filter(status=Backup.Status.SUCCEEDED, foreign=False)
    protected = protected_backups()
    if rule.keeps_everything:
        return [Verdict(Candidate.of(b), False, "the policy keeps everything") for b in backups]
    return select(
        [Candidate.of(b, protected.get(b.pk, "")) for b in backups],
        rule,
        now=now or timezone.now(),
        newest_good_id=newest_good_backup_id(),
    )


# --- deleting ------------------------------------------------------------------------------


@dataclass
class Deleted:
    names: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, why)


def delete_backups(doomed: Iterable[Verdict], actor: Actor) -> Deleted:
    """Deletes oldest first, then collects unused blobs once. A busy lock stops the run (Busy
    is raised after what was deleted is collected); other failures are gathered and reported."""
    done = Deleted()
    try:
        for verdict in to_delete(doomed):
            try:
                delete_backup(verdict.backup.id, actor, collect=False)
            except Busy:
                raise
            except BackupError as exc:
                done.failed.append((verdict.backup.name, str(exc)))
                continue
            done.names.append(verdict.backup.name)
    finally:
        if done.names:
            retire_copies(done.names, actor)  # off-site too, unless A4C_OFFSITE_KEEP_DAYS
            freed = store().collect_garbage()
            audit.record(
                actor,
                "storage.collect",
                outcome=Outcome.SUCCEEDED,
                parameters={
                    "blobs_removed": freed.blobs_removed,
                    "bytes_freed": freed.bytes_freed,
                    "notes": freed.notes(),
                },
            )
    return done


def apply_retention(policy_id, actor: Actor, now: datetime | None = None) -> list[str]:
    """Deletes what the preview lists; raises the first failure after deleting the rest."""
    policy = get_policy(policy_id)
    doomed = [v for v in retention_preview(policy.pk, now) if v.delete]
    done = delete_backups(doomed, actor)
    if doomed:
        audit.record(
            actor,
            "retention.apply",
            target=policy.name,
            outcome=Outcome.FAILED if done.failed else Outcome.SUCCEEDED,
            parameters={
                "deleted": done.names,
                "reasons": {v.backup.name: v.reason for v in doomed},
            },
        )
    if done.failed:
        name, why = done.failed[0]
        raise BackupError(f"Retention could not delete {name}: {why}")
    return done.names


def safety_backups_to_prune() -> list[Backup]:
    """Safety backups beyond the newest A4C_SAFETY_BACKUPS_KEEP (pinned ones stay)."""
    safety = Backup.objects.filter(
        trigger=Backup.Trigger.SAFETY,
        status=Backup.Status.SUCCEEDED,
        pinned=False,
        foreign=False,
    )
    return list(safety.order_by("-created_at", "-id")[settings.A4C_SAFETY_BACKUPS_KEEP :])


def prune_safety_backups(actor: Actor) -> list[str]:
    protected = protected_backups()
    doomed = [
        Verdict(Candidate.of(b), True, "beyond the safety backups kept")
        for b in safety_backups_to_prune()
        if b.pk not in protected
    ]
    return delete_backups(doomed, actor).names
