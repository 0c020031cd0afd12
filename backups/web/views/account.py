"""Signing out, the pages that say why a sign-in was refused or a session ended, and the pages
a person lands on when a request goes wrong (404, 403, CSRF, 500).

Django's own answers to these are unstyled and speak to developers ("More information is
available with DEBUG=True"); these speak to the operator and lead back into the console.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from backups.web import sessions


@require_http_methods(["GET", "POST"])
def sign_out(request: HttpRequest) -> HttpResponse:
    """POST signs out; GET (a bookmarked or typed /accounts/logout/) asks first, as signing out
    by a plain link would let any page sign a person out."""
    if request.method == "GET":
        if not request.user.is_authenticated:
            return redirect("login")
        return render(request, "registration/sign_out.html")
    logout(request)
    # Stored in the message cookie, which outlives the session that logout just ended.
    messages.info(request, "You are signed out.")
    return redirect("login")


@require_GET
def session_ended(request: HttpRequest) -> HttpResponse:
    """Where SessionLimitsMiddleware sends a person whose session it ended."""
    why = request.GET.get("why", "")
    reason = sessions.reason_text(why) if why in (sessions.IDLE, sessions.MAX_AGE) else ""
    return render(request, "registration/session_ended.html", {"reason": reason})


def locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """settings.AXES_LOCKOUT_CALLABLE: a sign-in refused after too many failures."""
    context = {
        "failure_limit": settings.A4C_LOGIN_FAILURE_LIMIT,
        "cooloff_minutes": f"{settings.A4C_LOGIN_COOLOFF_MINUTES:g}",
    }
    return render(request, "registration/locked_out.html", context, status=429)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """settings.CSRF_FAILURE_VIEW: a form posted from a page too old (or from another site)."""
    return render(request, "403_csrf.html", {"reason": reason}, status=403)
