"""Sign-ins, sign-outs and sign-in locks in the audit history, next to the operations people
then asked for.

Connected when this module is imported (BackupsConfig.ready imports it). A failed sign-in is
recorded under "anonymous" with the user name that was tried as its target: the person at the
keyboard is not known to be that user.
"""

from __future__ import annotations

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from backups import audit
from backups.audit import Actor
from backups.models import AuditEvent, Source

Outcome = AuditEvent.Outcome


def _actor(request, name: str, user=None) -> Actor:
    # A sign-in made outside a real request (the test client's force_login) has no request.user.
    if request is None or not hasattr(request, "user"):
        return Actor(name=name, source=Source.WEB, user=user)
    base = Actor.from_request(request)
    return Actor(
        name=name, source=Source.WEB, user=user or base.user, ip=base.ip, user_agent=base.user_agent
    )


@receiver(user_logged_in, dispatch_uid="backups.audit.user_logged_in")
def signed_in(sender, request, user, **kwargs) -> None:
    audit.record(
        _actor(request, user.get_username(), user),
        "auth.login",
        target=user.get_username(),
        outcome=Outcome.SUCCEEDED,
    )


@receiver(user_logged_out, dispatch_uid="backups.audit.user_logged_out")
def signed_out(sender, request, user, **kwargs) -> None:
    if user is None:  # the session had already ended
        return
    audit.record(
        _actor(request, user.get_username(), user),
        "auth.logout",
        target=user.get_username(),
        outcome=Outcome.SUCCEEDED,
    )


@receiver(user_login_failed, dispatch_uid="backups.audit.user_login_failed")
def sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    tried = str(credentials.get("username", ""))[:150]
    audit.record(
        _actor(request, "anonymous"),
        "auth.login_failed",
        target=tried,
        outcome=Outcome.FAILED,
        message="Wrong user name or password.",
    )


@receiver(user_locked_out, dispatch_uid="backups.audit.user_locked_out")
def locked_out(sender, request, username=None, ip_address=None, **kwargs) -> None:
    audit.record(
        _actor(request, "anonymous"),
        "auth.locked_out",
        target=str(username or ip_address or "")[:150],
        outcome=Outcome.REFUSED,
        message=(
            f"Sign-ins refused for {settings.A4C_LOGIN_COOLOFF_MINUTES:g} minutes after "
            f"{settings.A4C_LOGIN_FAILURE_LIMIT} failures (user {username or '?'}, "
            f"address {ip_address or '?'}); `manage.py unlock` lifts it."
        ),
        parameters={"username": username or "", "address": ip_address or ""},
    )
