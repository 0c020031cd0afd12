"""The two endpoints machines call without signing in: /healthz and /metrics."""

import hmac

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseForbidden, HttpResponseNotFound
from django.views.decorators.http import require_GET

from backups.web.metrics import CONTENT_TYPE, prometheus_text


@require_GET
def healthz(request):
    """Says only up or down: whether this process can reach its database."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure is "down"
        return HttpResponse("down\n", status=503, content_type="text/plain")
    return HttpResponse("up\n", content_type="text/plain")


@require_GET
def metrics(request):
    token = settings.A4C_METRICS_TOKEN
    if not token:
        return HttpResponseNotFound(
            "metrics are off: set A4C_METRICS_TOKEN\n", content_type="text/plain"
        )
    given = request.headers.get("Authorization", "").removeprefix(
        "Bearer "
    ).strip() or request.GET.get("token", "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        return HttpResponseForbidden("a valid token is needed\n", content_type="text/plain")
    return HttpResponse(prometheus_text(), content_type=CONTENT_TYPE)
