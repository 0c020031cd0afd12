"""Sign-in throttling (django-axes, settings AXES_*): whose address counts, and lifting a lock.

Failures are counted by django-axes on every authenticate() call: the sign-in page and the
admin's alike. The other doors take no password: pages need a session, /metrics its token.
Lifting a lock is an operation: backups/operations/sign_in_locks.py.
"""

from __future__ import annotations


def client_address(request) -> str | None:
    """settings.AXES_CLIENT_IP_CALLABLE. The peer the web server saw: behind A4C_TRUSTED_PROXY
    the server has already put the client's address there; a header is never read here."""
    return request.META.get("REMOTE_ADDR") or None
