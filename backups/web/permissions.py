"""Who may do what in the web console, and the trace a refusal leaves.

Three roles (groups created by migration 0002): viewers see everything; operators also create,
verify and cancel backups; restorers also restore, roll back and delete. A view names the
permission it needs with ``@requires``; a signed-in person without it gets a 403 page and an
audit event with the outcome "denied", so refused attempts are as visible as allowed ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from backups import audit
from backups.audit import Actor
from backups.models import AuditEvent

# The permission each kind of request needs, in the operator's words for the 403 page.
WHAT = {
    "view_backup": "see backups",
    "view_auditevent": "see the audit history",
    "add_backup": "create backups",
    "verify_backup": "verify backups",
    "cancel_operation": "cancel a running backup or restore",
    "restore_backup": "restore backups",
    "rollback_restore": "roll back a restore",
    "delete_backup": "delete backups",
}


def deny(request: HttpRequest, permission: str, action: str, target: str = "") -> HttpResponse:
    """Records the refused attempt and answers 403 with a page saying what was refused."""
    audit.record(
        Actor.from_request(request),
        action,
        target=target or request.path,
        outcome=AuditEvent.Outcome.DENIED,
        message=f"Missing permission backups.{permission}.",
        parameters={"method": request.method, "path": request.path},
    )
    what = WHAT.get(permission, permission.replace("_", " "))
    return render(request, "backups/403.html", {"what": what, "permission": permission}, status=403)


def requires(permission: str, action: str) -> Callable:
    """Signed in (else to the sign-in page) and holding ``backups.<permission>`` (else 403)."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.has_perm(f"backups.{permission}"):
                return deny(request, permission, action)
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorate
