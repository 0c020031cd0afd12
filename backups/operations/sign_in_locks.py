"""Lifting a sign-in lock that django-axes holds (backups/web/throttle.py says whose address
counts): the work of `manage.py unlock`, audited."""

from __future__ import annotations

from axes.utils import reset

from backups import audit
from backups.audit import Actor


def lift(actor: Actor, *, username: str = "", address: str = "") -> int:
    """Forgets the failures of ``username`` and/or from ``address``; returns how many records
    went. Audited even when there was nothing to lift, so that the attempt shows."""
    removed = 0
    if username:
        removed += reset(username=username)
    if address:
        removed += reset(ip=address)
    target = ", ".join(part for part in (username, address) if part)
    audit.record(
        actor,
        "auth.unlocked",
        target=target,
        message=f"Sign-in lock lifted ({removed} failure record{'s' if removed != 1 else ''}).",
        parameters={"username": username, "address": address, "records": removed},
    )
    return removed
