"""The doctor's look at restore drills: with A4C_DRILL_MAX_AGE_DAYS set, no drill passing
within that many days turns Health red, naming the last passing drill and when."""

from __future__ import annotations

from django.utils import timezone

from backups import selectors
from backups.doctor.result import Check

NAME = "Restore drills"


def drills_check(now=None) -> Check:
    age = selectors.drill_age(now)
    if age.too_old:
        return Check(
            NAME,
            False,
            f"no drill passed in the last {age.max_age_days:g} days. {age.sentence}",
            "Run one (`manage.py drill --latest`, or 'Run a drill' on a backup's page), or set "
            "a policy's 'Drill every'; a failed drill's page says what is wrong with the set.",
            "error",
        )
    if age.job is None:
        return Check(NAME, True, "none has passed yet; no limit is set (A4C_DRILL_MAX_AGE_DAYS)")
    when = timezone.localtime(age.job.finished_at)
    limit = f", within the {age.max_age_days:g} days allowed" if age.max_age_days else ""
    return Check(
        NAME, True, f"last passed: backup {age.job.backup.name}, {when:%Y-%m-%d %H:%M}{limit}"
    )
