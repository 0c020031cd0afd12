"""The test notification: proves the configured email and webhook reach someone.

Shared by the console's "Send a test" button and `manage.py policy notify test`; sending is
backups/operations/notify.py's, this module adds the audit event saying who asked and how it went.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

from backups import audit
from backups.audit import Actor, Outcome
from backups.errors import ConfigError
from backups.models import NotificationDelivery
from backups.operations import notify

NO_CHANNEL = (
    "No notification channel is configured: set A4C_NOTIFY_EMAILS (and EMAIL_URL) "
    "or A4C_NOTIFY_WEBHOOK_URL, then restart the console and the worker."
)


def send_test_notification(actor: Actor) -> list[NotificationDelivery]:
    """Sends the "test" event to every channel; raises ConfigError when there is none."""
    if not settings.A4C_NOTIFY_EMAILS and not settings.A4C_NOTIFY_WEBHOOK_URL:
        audit.record(actor, "notify.test", outcome=Outcome.REFUSED, message=NO_CHANNEL)
        raise ConfigError(NO_CHANNEL)
    deliveries = notify.notify(
        "test",
        "Test notification",
        f"{actor.name} sent this test from a4c-backup: notifications reach you.",
        {"actor": actor.name, "source": actor.source},
    )
    failed = [d for d in deliveries if not d.ok]
    audit.record(
        actor,
        "notify.test",
        target=", ".join(d.channel for d in deliveries),
        outcome=Outcome.FAILED if failed else Outcome.SUCCEEDED,
        message="; ".join(f"{d.channel} to {shown_target(d)}: {d.error}" for d in failed),
        parameters={
            "deliveries": [
                {"id": d.pk, "channel": d.channel, "target": shown_target(d), "ok": d.ok}
                for d in deliveries
            ]
        },
    )
    return deliveries


def shown_target(delivery: NotificationDelivery) -> str:
    """Where it went, fit for every viewer: a webhook's path and query often hold its secret."""
    if delivery.channel != "webhook":
        return delivery.target
    parts = urlsplit(delivery.target)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    hidden = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{hidden}" if parts.scheme else "(not a URL)"
