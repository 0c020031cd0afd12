"""The console's pages for policies: schedules, the retention preview, and notifications.

Views are thin, as in views.py: they check who asks (backups/web/permissions.py), turn form input
into plain values (backups/web/policy_forms.py) and call backups/operations; a "run now" backup
goes to a worker like any other. Viewing needs view_backup; creating, editing, running and
pausing need add_backup (operators); applying retention deletes backups, so it needs
delete_backup (restorers).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from backups import operations
from backups.audit import Actor
from backups.errors import BackupError
from backups.formatting import count_of
from backups.models import NotificationDelivery, Policy, RunKind
from backups.operations.drill_schedule import describe_drill_every
from backups.operations.notifications import send_test_notification, shown_target
from backups.web.permissions import requires
from backups.web.policy_forms import PolicyForm
from backups.web.worker import hand_to_worker

log = logging.getLogger(__name__)
PAGE_SIZE = 50


def _back(request: HttpRequest, default: str, *args) -> HttpResponse:
    """Where the button was: the list or the policy's page (?next=, checked as the login does)."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(default, *args)


# --- list, create, edit ----------------------------------------------------------------------


@requires("view_backup", "page.view")
@require_GET
def policy_list(request: HttpRequest) -> HttpResponse:
    context = {"policies": Policy.objects.all(), "time_zone": settings.TIME_ZONE}
    return render(request, "policies/policy_list.html", context)


@requires("add_backup", "policy.create")
def policy_new(request: HttpRequest) -> HttpResponse:
    form = PolicyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        policy = _save(request, form, None)
        if policy is not None:
            messages.success(request, f"Policy {policy.name} created.")
            return redirect("policies:detail", pk=policy.pk)
    return _form_page(request, form, None)


@requires("add_backup", "policy.update")
def policy_edit(request: HttpRequest, pk: int) -> HttpResponse:
    policy = get_object_or_404(Policy, pk=pk)
    form = PolicyForm(request.POST or None, policy=policy)
    if request.method == "POST" and form.is_valid():
        saved = _save(request, form, policy.pk)
        if saved is not None:
            messages.success(request, f"Policy {saved.name} saved.")
            return redirect("policies:detail", pk=saved.pk)
    return _form_page(request, form, policy)


def _form_page(request: HttpRequest, form: PolicyForm, policy: Policy | None) -> HttpResponse:
    context = {"form": form, "policy": policy}
    return render(request, "policies/policy_form.html", context)


def _save(request: HttpRequest, form: PolicyForm, policy_id: int | None) -> Policy | None:
    try:
        policy = operations.save_policy(
            Actor.from_request(request), policy_id, **form.policy_fields()
        )
    except BackupError as exc:  # the engine has the last word, e.g. a name taken meanwhile
        form.add_error(None, str(exc))
        return None
    warning = operations.schedule_warning(policy.schedule)
    if warning:
        messages.warning(request, warning)
    return policy


@requires("add_backup", "policy.delete")
def policy_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Asks, then removes the policy; the backups it took stay."""
    policy = get_object_or_404(Policy, pk=pk)
    if request.method == "POST":
        name = operations.delete_policy(policy.pk, Actor.from_request(request))
        messages.success(request, f"Policy {name} deleted; the backups it took stay.")
        return redirect("policies:list")
    kept = policy.backups.exclude(status="deleted").count()
    return render(request, "policies/policy_delete.html", {"policy": policy, "kept": kept})


# --- one policy: facts and retention preview -------------------------------------------------


def _preview(policy: Policy) -> tuple[list, list]:
    verdicts = operations.retention_preview(policy.pk)
    return [v for v in verdicts if v.delete], [v for v in verdicts if not v.delete]


def _ids(verdicts) -> str:
    return ",".join(str(v.backup.pk) for v in verdicts)


@requires("view_backup", "page.view")
@require_GET
def policy_detail(request: HttpRequest, pk: int) -> HttpResponse:
    policy = get_object_or_404(Policy, pk=pk)
    doomed, kept = _preview(policy)
    context = {
        "policy": policy,
        "doomed": doomed,
        "kept": kept,
        "doomed_ids": _ids(doomed),
        "rules": retention_rules(policy),
        "drill_every": describe_drill_every(policy.drill_every),
        "time_zone": settings.TIME_ZONE,
        "recent": policy.backups.order_by("-created_at", "-id")[:10],
    }
    return render(request, "policies/policy_detail.html", context)


def retention_rules(policy: Policy) -> list[str]:
    """The policy's retention in the words of Policy's docstring, in the order they apply."""
    tiers = [
        count_of(count, unit)
        for count, unit in (
            (policy.keep_daily, "day"),
            (policy.keep_weekly, "week"),
            (policy.keep_monthly, "month"),
        )
        if count
    ]
    rules = []
    if tiers:
        rules.append(f"The newest backup of each of the last {', '.join(tiers)}.")
    if policy.max_age_days:
        rules.append(f"None older than {count_of(policy.max_age_days, 'day')}.")
    if policy.keep_last:
        newest = "the newest" if policy.keep_last == 1 else f"the {policy.keep_last:,} newest"
        rules.append(f"At most {newest}.")
    if not rules:
        return ["Every backup is kept: no limit is set."]
    rules.append(f"At least {count_of(policy.keep_min, 'backup')}, even when older.")
    rules.append("Pinned backups, and the newest good backup of all, are always kept.")
    return rules


@requires("delete_backup", "retention.apply")
@require_POST
def policy_apply_retention(request: HttpRequest, pk: int) -> HttpResponse:
    """Deletes what the page showed, and only that: a preview that changed is shown again."""
    policy = get_object_or_404(Policy, pk=pk)
    now = timezone.now()
    doomed = [v for v in operations.retention_preview(policy.pk, now) if v.delete]
    if request.POST.get("expected", "") != _ids(doomed):
        messages.warning(
            request,
            "The retention preview changed since the page was shown (a backup ended, or the "
            "policy was edited): nothing was deleted. Check the new preview and apply again.",
        )
        return redirect("policies:detail", pk=policy.pk)
    if not doomed:
        messages.info(request, f"Policy {policy.name}'s retention deletes nothing now.")
        return redirect("policies:detail", pk=policy.pk)
    try:
        deleted = operations.apply_retention(policy.pk, Actor.from_request(request), now)
    except BackupError as exc:
        messages.error(request, f"Retention stopped: {exc}")
    else:
        messages.success(request, f"Deleted {len(deleted)}: {', '.join(deleted)}.")
    return redirect("policies:detail", pk=policy.pk)


# --- run now, pause --------------------------------------------------------------------------


@requires("add_backup", "policy.run_now")
@require_POST
def policy_run(request: HttpRequest, pk: int) -> HttpResponse:
    policy = get_object_or_404(Policy, pk=pk)
    actor = Actor.from_request(request)
    try:
        backup = operations.run_policy_now(policy.pk, actor)
    except BackupError as exc:
        messages.error(request, f"Policy {policy.name} could not start a backup: {exc}")
        return _back(request, "policies:detail", policy.pk)
    problem = hand_to_worker(RunKind.BACKUP, backup.pk, actor)
    if problem:
        messages.error(request, problem)
    else:
        messages.success(request, f"Policy {policy.name} started backup {backup.name}.")
    return redirect("backups:backup_detail", pk=backup.pk)


@requires("add_backup", "policy.pause")
@require_POST
def policy_pause(request: HttpRequest, pk: int) -> HttpResponse:
    policy = get_object_or_404(Policy, pk=pk)
    paused = request.POST.get("paused") == "1"
    policy = operations.set_paused(policy.pk, paused, Actor.from_request(request))
    if paused:
        messages.success(request, f"Policy {policy.name} paused: it takes no backup until resumed.")
    else:
        when = timezone.localtime(policy.next_run_at)
        next_run = f"{when:%Y-%m-%d %H:%M %Z}"
        messages.success(request, f"Policy {policy.name} resumed: next run {next_run}.")
    return _back(request, "policies:detail", policy.pk)


# --- notifications ---------------------------------------------------------------------------


@requires("view_backup", "page.view")
@require_GET
def notifications(request: HttpRequest) -> HttpResponse:
    page = Paginator(NotificationDelivery.objects.order_by("-id"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    for delivery in page.object_list:
        delivery.shown_target = shown_target(delivery)
    webhook = NotificationDelivery(channel="webhook", target=settings.A4C_NOTIFY_WEBHOOK_URL)
    context = {
        "page": page,
        "emails": settings.A4C_NOTIFY_EMAILS,
        "webhook": shown_target(webhook) if settings.A4C_NOTIFY_WEBHOOK_URL else "",
    }
    return render(request, "policies/notifications.html", context)


@requires("add_backup", "notify.test")
@require_POST
def notification_test(request: HttpRequest) -> HttpResponse:
    try:
        deliveries = send_test_notification(Actor.from_request(request))
    except BackupError as exc:
        messages.error(request, str(exc))
        return redirect("policies:notifications")
    for delivery in deliveries:
        where = f"{delivery.get_channel_display()} to {shown_target(delivery)}"
        if delivery.ok:
            messages.success(request, f"Test sent: {where}.")
        else:
            messages.error(request, f"Test failed: {where}: {delivery.error}")
    return redirect("policies:notifications")


# --- the dashboard's panel -------------------------------------------------------------------


def policies_panel_context() -> dict:
    """What templates/policies/_dashboard_panel.html shows: every policy's last runs and next."""
    return {"panel_policies": list(Policy.objects.all())}
