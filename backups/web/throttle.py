"""Sign-in throttling (django-axes, settings AXES_*): whose address counts, and lifting a lock.

Failures are counted by django-axes on every authenticate() call: the sign-in page and the
admin's alike. The other doors take no password: pages need a session, /metrics its token.
"""

from __future__ import annotations

from axes.utils import reset

from backups import audit
from backups.audit import Actor


def client_address(request) -> str | None:
    """settings.AXES_CLIENT_IP_CALLABLE. The peer the web server saw: behind A4C_TRUSTED_PROXY
    the server has already put the client's address there; a header is never read here."""
    return request.META.get("REMOTE_ADDR") or None


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
