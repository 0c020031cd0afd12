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
from django.contrib.auth.models import Group, Permission
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from backups import audit
from backups.audit import Actor
from backups.models import AuditEvent, Backup, Policy, RestoreRun

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


# Where one permission guards several kinds of request, what the person was refused.
WHAT_BY_ACTION = {
    "policy.create": "create policies",
    "policy.update": "edit policies",
    "policy.delete": "delete policies",
    "policy.run_now": "run a policy now",
    "policy.pause": "pause or resume policies",
    "retention.apply": "apply a policy's retention (it deletes backups)",
    "notify.test": "send test notifications",
    "drill.request": "run restore drills",
    "drill.cancel": "cancel a restore drill",
    "backup.export": "download backup archives",
    "catalog.sync": "sync the list of backups with the backup storage",
}


def refused_target(request: HttpRequest, pk: int | None) -> tuple[str, Backup | None]:
    """What a refused request was about, in the operator's words: the backup's name (and the
    backup, linked from the event), a restore or a policy; the path when the URL names none."""
    match = request.resolver_match
    if match is not None and match.app_name == "policies" and pk is not None:
        policy = Policy.objects.filter(pk=pk).only("name").first()
        return (f"policy {policy.name}" if policy else request.path), None
    url_name = match.url_name if match is not None else ""
    backup = None
    if pk is not None and url_name.startswith("restore_"):
        run = RestoreRun.objects.select_related("backup").filter(pk=pk).first()
        backup = run.backup if run else None
    elif pk is not None:
        backup = Backup.objects.filter(pk=pk).first()
    else:
        asked = (request.POST if request.method == "POST" else request.GET).get("backup", "")
        backup = Backup.objects.filter(pk=int(asked)).first() if asked.isdigit() else None
    return (backup.name if backup else request.path), backup


def deny(request: HttpRequest, permission: str, action: str, pk: int | None = None) -> HttpResponse:
    """Records the refused attempt and answers 403 with a page saying what was refused."""
    target, backup = refused_target(request, pk)
    audit.record(
        Actor.from_request(request),
        action,
        target=target,
        outcome=AuditEvent.Outcome.DENIED,
        message=f"Missing permission backups.{permission}.",
        parameters={"method": request.method, "path": request.path},
        backup=backup,
    )
    what = WHAT_BY_ACTION.get(action) or WHAT.get(permission, permission.replace("_", " "))
    context = {"what": what, "permission": permission, **_who_holds(permission)}
    return render(request, "backups/403.html", context, status=403)


def _who_holds(permission: str) -> dict:
    """The right a refusal names, in the admin's words, and the groups that give it now."""
    right = Permission.objects.filter(
        content_type__app_label="backups", codename=permission
    ).first()
    groups = Group.objects.filter(permissions=right).order_by("name") if right else []
    return {"right": right.name if right else "", "groups": [g.name for g in groups]}


def requires(permission: str, action: str) -> Callable:
    """Signed in (else to the sign-in page) and holding ``backups.<permission>`` (else 403)."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.has_perm(f"backups.{permission}"):
                return deny(request, permission, action, kwargs.get("pk"))
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorate
