"""The audit history: the filtered list, the chain check and the CSV export."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from backups import audit
from backups.models import AuditEvent
from backups.web import queries
from backups.web.forms import (
    AuditFilterForm,
)
from backups.web.permissions import requires
from backups.web.queries import page_of

log = logging.getLogger(__name__)


def _audit_queryset(request: HttpRequest) -> tuple[AuditFilterForm, object]:
    filters = AuditFilterForm(request.GET or None)
    return filters, filters.filter(AuditEvent.objects.order_by("-id"))


@requires("view_auditevent", "page.view")
@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    filters, queryset = _audit_queryset(request)
    context = {
        "filters": filters,
        "page": page_of(request, queryset),
        "actions": queries.AUDIT_ACTIONS,
    }
    return render(request, "backups/audit_list.html", context)


@requires("view_auditevent", "page.view")
@require_GET
def audit_chain(request: HttpRequest) -> HttpResponse:
    """The hash chain walked end to end; its own request, as it reads every event."""
    report = audit.verify_chain()
    return render(request, "backups/fragments/audit_chain.html", {"report": report})


@requires("view_auditevent", "page.view")
@require_GET
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered history as CSV, streamed so that a year of events never sits in memory."""
    _, queryset = _audit_queryset(request)
    rows = audit.csv_lines(queryset.iterator(chunk_size=2000))

    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(
        True, f"a4c-backup-audit-{stamp}.csv"
    )
    return response
