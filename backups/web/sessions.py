"""How long a signed-in session lasts, and ending a person's sessions everywhere.

A session ends after A4C_SESSION_IDLE_MINUTES without a request the person made (the pages'
own polling, sent with "X-Requested-With: fetch", does not keep it alive) and, whatever the
activity, A4C_SESSION_MAX_HOURS after signing in. The times are kept in the session itself
(seconds since the epoch), so a test ages a session by editing them, never by sleeping.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_logged_in
from django.contrib.sessions.models import Session
from django.dispatch import receiver
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from backups import audit
from backups.audit import Actor

SIGNED_IN_AT = "a4c_signed_in_at"
LAST_SEEN = "a4c_last_seen"
# The last-seen time is written at most this often: not a database write per request.
LAST_SEEN_STEP = 30.0

IDLE, MAX_AGE = "idle", "max"


def start(session) -> None:
    """Called at sign-in (backups/signals.py): both clocks start now."""
    now = time.time()
    session[SIGNED_IN_AT] = now
    session[LAST_SEEN] = now


def ended_because(session, now: float) -> str | None:
    signed_in_at = session.get(SIGNED_IN_AT)
    last_seen = session.get(LAST_SEEN, signed_in_at)
    if signed_in_at is None:
        return None
    if now - signed_in_at > settings.A4C_SESSION_MAX_HOURS * 3600:
        return MAX_AGE
    if now - last_seen > settings.A4C_SESSION_IDLE_MINUTES * 60:
        return IDLE
    return None


def _polling(request) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


@receiver(user_logged_in, dispatch_uid="backups.web.sessions.signed_in")
def signed_in(sender, request, user, **kwargs) -> None:
    """A session's clock starts at sign-in (this module is loaded with its middleware)."""
    if request is not None and hasattr(request, "session"):
        start(request.session)


class SessionLimitsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            now = time.time()
            if SIGNED_IN_AT not in request.session:  # signed in before this was deployed
                start(request.session)
            why = ended_because(request.session, now)
            if why:
                return _end(request, why)
            if not _polling(request) and now - request.session[LAST_SEEN] >= LAST_SEEN_STEP:
                request.session[LAST_SEEN] = now
        return self.get_response(request)


def _end(request, why: str):
    user = request.user
    audit.record(
        Actor.from_request(request),
        "auth.session_expired",
        target=user.get_username(),
        message=reason_text(why),
    )
    # What logout() does, without its "signed out" event: the audit says why instead.
    request.session.flush()
    request.user = AnonymousUser()
    return redirect(f"{reverse('session_ended')}?why={why}")


def reason_text(why: str) -> str:
    if why == MAX_AGE:
        hours = settings.A4C_SESSION_MAX_HOURS
        return f"Signed out {hours:g} hours after signing in: sessions last at most that long."
    minutes = settings.A4C_SESSION_IDLE_MINUTES
    return f"Signed out after {minutes:g} minutes without activity."


def sign_out_everywhere(user) -> int:
    """Deletes every session of ``user`` (each browser, each device); returns how many."""
    pk = str(user.pk)
    doomed = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if session.get_decoded().get(SESSION_KEY) == pk
    ]
    Session.objects.filter(pk__in=doomed).delete()
    return len(doomed)
