"""Which backups a retention rule removes: pure functions over plain values, no database.

``manage.py prune`` turns rows into ``Candidate`` values, asks ``select`` and deletes what it
says through operations.delete_backup; the same rules can back a schedule or a page.

The rules, in the order they are applied (the first that matches decides):

1. a pinned backup is kept;
2. a backup the caller protects (the safety backup a rollback would need) is kept;
3. the newest succeeded backup taken on purpose is kept, whatever the options;
4. ``keep_last=N`` keeps the N newest succeeded backups taken on purpose, and everything
   newer than the oldest of them (failed runs, safety backups): a string of failures never
   pushes good backups out;
5. ``older_than`` keeps what is younger than that;
6. the rest goes. With both options a backup goes only when both allow it.

Safety backups (taken automatically before a restore) hold only what that restore overwrote,
so they never count as one of the N, nor as the newest backup.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

CONSIDERED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Candidate:
    id: int
    name: str
    status: str
    created_at: datetime
    pinned: bool = False
    safety: bool = False  # taken automatically before a restore
    protected: str = ""  # why the caller wants it kept, or empty


@dataclass(frozen=True)
class Verdict:
    backup: Candidate
    delete: bool
    reason: str


def check_rule(keep_last: int | None, older_than: timedelta | None) -> None:
    """Raises ValueError with the message a person needs when the rule cannot be applied."""
    if keep_last is None and older_than is None:
        raise ValueError("say what to keep: --keep-last N, --older-than DAYS, or both")
    if keep_last is not None and keep_last < 1:
        raise ValueError("--keep-last must be 1 or more (the newest backup is always kept)")
    if older_than is not None and older_than <= timedelta(0):
        raise ValueError("--older-than must be more than 0 days")


def _newest_first(backups: Iterable[Candidate]) -> list[Candidate]:
    return sorted(backups, key=lambda b: (b.created_at, b.id), reverse=True)


def select(
    backups: Iterable[Candidate],
    *,
    keep_last: int | None = None,
    older_than: timedelta | None = None,
    now: datetime,
) -> list[Verdict]:
    """A verdict per finished backup, newest first; running and deleted ones are left out."""
    check_rule(keep_last, older_than)
    considered = [b for b in _newest_first(backups) if b.status in CONSIDERED]
    good = [b for b in considered if b.status == "succeeded" and not b.safety]
    newest = good[0].id if good else None
    kept_by_count = {b.id for b in good[:keep_last]} if keep_last else set()
    cutoff = good[keep_last - 1].created_at if keep_last and len(good) >= keep_last else None
    verdicts = []
    for backup in considered:
        keep = _kept_because(backup, newest, keep_last, kept_by_count, cutoff, older_than, now)
        if keep:
            verdicts.append(Verdict(backup, False, keep))
        else:
            verdicts.append(Verdict(backup, True, _why_it_goes(backup, keep_last, older_than)))
    return verdicts


def _kept_because(backup, newest, keep_last, kept_by_count, cutoff, older_than, now) -> str:
    if backup.pinned:
        return "pinned"
    if backup.protected:
        return backup.protected
    if backup.id == newest:
        return "the newest succeeded backup"
    if keep_last:
        if backup.id in kept_by_count:
            return f"one of the {keep_last} newest succeeded backups"
        if cutoff is None:
            return f"fewer than {keep_last} succeeded backups exist"
        if backup.created_at > cutoff:
            return f"newer than the oldest of the {keep_last} kept"
    if older_than is not None and backup.created_at > now - older_than:
        return f"younger than {_days(older_than)}"
    return ""


def _why_it_goes(backup: Candidate, keep_last: int | None, older_than: timedelta | None) -> str:
    reasons = []
    if keep_last:
        reasons.append(f"older than the {keep_last} newest succeeded backups")
    if older_than is not None:
        reasons.append(f"older than {_days(older_than)}")
    kind = "safety backup, " if backup.safety else ""
    status = "" if backup.status == "succeeded" else f"{backup.status}, "
    return f"{kind}{status}{' and '.join(reasons)}"


def _days(value: timedelta) -> str:
    days = value.total_seconds() / 86400
    return f"{days:g} day{'s' if days != 1 else ''}"


def to_delete(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """The backups that go, oldest first (the order they are deleted in)."""
    return sorted(
        (v for v in verdicts if v.delete), key=lambda v: (v.backup.created_at, v.backup.id)
    )
