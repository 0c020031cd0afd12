"""The doctor's look at the policies: a policy whose last run failed is trouble, not news.

A policy failing every minute once left the dashboard's Health all green; this check turns it
yellow and names the policy and its last error.
"""

from __future__ import annotations

from django.db.models import F, Q

from backups.doctor.result import Check
from backups.models import Policy

NAME = "Policies"


def policies_check() -> Check:
    failing = list(
        Policy.objects.filter(paused=False, last_failure_at__isnull=False)
        .filter(Q(last_success_at__isnull=True) | Q(last_failure_at__gt=F("last_success_at")))
        .order_by("-last_failure_at")
    )
    active = Policy.objects.filter(paused=False).count()
    if not failing:
        if not active:
            return Check(NAME, True, "none active: backups are taken only by hand")
        return Check(NAME, True, f"{active} active, none failing")
    first = failing[0]
    others = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
    return Check(
        NAME,
        False,
        f"policy {first.name} failed its last run{others}: "
        f"{first.last_failure_message or 'no message was recorded'}",
        "Open the policy's page: fix what the message says, or pause the policy.",
        "warning",
    )
