"""The dashboard: what runs now, the last good backup and the newest proven restorable by a
drill, recent runs, health, policies."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from backups import operations, selectors
from backups.doctor import checks as health
from backups.web import queries
from backups.web.permissions import requires
from backups.web.views.policies import policies_panel_context
from backups.web.worker import worker_missing

log = logging.getLogger(__name__)


@requires("view_backup", "page.view")
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "backups/dashboard.html", _live_context())


def _live_context() -> dict:
    running = selectors.running_operation()
    return {
        "running": running,
        "running_progress": queries.progress_of(running.run) if running and running.run else None,
        "worker_missing": worker_missing() if running and _pending(running.run) else "",
        "last_good": selectors.last_good_backup(),
        "proven": queries.proven_backup(),
        "live_data": selectors.live_data_source(),
        "latest_backups": selectors.latest_backups(),
        "latest_restores": selectors.latest_restores(),
        "a4c_stuck": operations.stuck_maintenance_runs(),
        "a4c_clear_command": operations.A4C_MAINTENANCE_CLEAR_COMMAND,
        **policies_panel_context(),
    }


def _pending(run) -> bool:
    return run is not None and run.status == "pending"


@requires("view_backup", "page.view")
@require_GET
def dashboard_live(request: HttpRequest) -> HttpResponse:
    return render(request, "backups/fragments/dashboard_live.html", _live_context())


@requires("view_backup", "page.view")
@require_GET
def health_fragment(request: HttpRequest) -> HttpResponse:
    try:
        # The lock is "Running now"'s to show: two panels on two clocks contradicted each other.
        checks = health.run_checks(lock=False)
    except Exception as exc:  # noqa: BLE001 - the panel must render even when a check breaks
        log.exception("health checks failed")
        checks = None
        failure = str(exc)
    else:
        failure = ""
    return render(request, "backups/fragments/health.html", {"checks": checks, "failure": failure})
