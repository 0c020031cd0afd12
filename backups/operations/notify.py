"""Telling people: email (Django's mail settings) and a generic JSON webhook.

Every attempt is recorded as a NotificationDelivery with its outcome. A notification that
cannot be delivered never fails the operation that sent it.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from backups.models import NotificationDelivery

log = logging.getLogger(__name__)


def notify(
    event: str, subject: str, message: str, data: dict | None = None
) -> list[NotificationDelivery]:
    """Sends to every configured channel; returns the recorded deliveries."""
    payload = {
        "event": event,
        "subject": subject,
        "message": message,
        "at": timezone.now().isoformat(),
        "data": data or {},
    }
    deliveries = []
    if settings.A4C_NOTIFY_EMAILS:
        deliveries.append(_email(event, subject, message, payload))
    if settings.A4C_NOTIFY_WEBHOOK_URL:
        deliveries.append(_webhook(event, subject, payload))
    return deliveries


def _record(event: str, channel: str, target: str, subject: str, payload: dict, error: str):
    if error:
        log.warning("notification %s over %s to %s failed: %s", event, channel, target, error)
    return NotificationDelivery.objects.create(
        event=event,
        channel=channel,
        target=target[:500],
        subject=subject[:300],
        payload=payload,
        ok=not error,
        error=error,
    )


def _email(event: str, subject: str, message: str, payload: dict) -> NotificationDelivery:
    recipients = list(settings.A4C_NOTIFY_EMAILS)
    error = ""
    try:
        send_mail(f"[a4c-backup] {subject}", message, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception as exc:  # noqa: BLE001 - any mail failure is recorded, never raised
        error = f"{type(exc).__name__}: {exc}"
    return _record(event, "email", ", ".join(recipients), subject, payload, error)


WEBHOOK_SCHEMES = ("http://", "https://")


def _webhook(event: str, subject: str, payload: dict) -> NotificationDelivery:
    url = settings.A4C_NOTIFY_WEBHOOK_URL
    if not url.lower().startswith(WEBHOOK_SCHEMES):  # urllib would also open file:// and ftp://
        error = "A4C_NOTIFY_WEBHOOK_URL is not an http:// or https:// URL: nothing was sent."
        return _record(event, "webhook", url, subject, payload, error)
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "a4c-backup"},
        method="POST",
    )
    error = ""
    try:
        with urllib.request.urlopen(request, timeout=settings.A4C_NOTIFY_TIMEOUT) as answer:  # noqa: S310
            if answer.status >= 300:
                error = f"HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        error = f"HTTP {exc.code} {exc.reason}"
    except Exception as exc:  # noqa: BLE001 - unreachable, timeout, bad URL: recorded
        error = f"{type(exc).__name__}: {exc}"
    return _record(event, "webhook", url, subject, payload, error)
