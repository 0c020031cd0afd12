"""Sessions end: after A4C_SESSION_IDLE_MINUTES without a request the person made, and
A4C_SESSION_MAX_HOURS after signing in, with a page that says which; an admin can sign a
person out everywhere. Time is passed by editing the session's own clocks, never by sleeping."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from people import member

from backups.models import AuditEvent
from backups.web.sessions import LAST_SEEN, SIGNED_IN_AT

pytestmark = pytest.mark.django_db(transaction=True)

MINUTE, HOUR = 60, 3600


def signed_in_client(name: str = "vic") -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"username": name, "password": f"pw-{name}-12345"})
    assert response.status_code == 302
    return client


def age(client: Client, **seconds_ago: float) -> None:
    """Moves the session's clocks back: signed_in_at=, last_seen= seconds."""
    session = client.session
    keys = {"signed_in_at": SIGNED_IN_AT, "last_seen": LAST_SEEN}
    for name, ago in seconds_ago.items():
        session[keys[name]] = time.time() - ago
    session.save()


@pytest.fixture
def vic_account():
    """vic, of the viewers, signed in nowhere yet: each test signs in its own clients."""
    return member("vic", "viewers")


def test_an_hour_without_activity_ends_the_session_with_a_page_that_says_so(vic_account):
    client = signed_in_client()
    age(client, last_seen=60 * MINUTE + 1)

    response = client.get("/backups/", follow=True)

    assert response.redirect_chain[0][0] == "/accounts/session-ended/?why=idle"
    html = response.content.decode()
    assert "You were signed out" in html and "after 60 minutes without activity" in html
    assert client.get("/backups/").status_code == 302, "signed out for good"
    event = AuditEvent.objects.get(action="auth.session_expired")
    assert event.target == "vic" and "without activity" in event.message


def test_fifty_nine_idle_minutes_keep_the_session_and_a_page_restarts_the_idle_clock(vic_account):
    client = signed_in_client()
    age(client, last_seen=59 * MINUTE)

    assert client.get("/backups/").status_code == 200
    assert time.time() - client.session[LAST_SEEN] < 5


def test_the_pages_own_polling_does_not_keep_an_idle_session_alive(vic_account):
    client = signed_in_client()
    age(client, last_seen=59 * MINUTE)
    before = client.session[LAST_SEEN]

    polled = client.get("/live/health/", HTTP_X_REQUESTED_WITH="fetch")

    assert polled.status_code == 200
    assert client.session[LAST_SEEN] == before
    age(client, last_seen=60 * MINUTE + 1)
    ended = client.get("/live/health/", HTTP_X_REQUESTED_WITH="fetch")
    assert ended.status_code == 302, "the page's script then says the session ended"


def test_twelve_hours_after_signing_in_the_session_ends_however_busy(vic_account):
    client = signed_in_client()
    age(client, signed_in_at=12 * HOUR + 1, last_seen=10)

    response = client.get("/backups/", follow=True)

    assert response.redirect_chain[0][0] == "/accounts/session-ended/?why=max"
    assert "Signed out 12 hours after signing in" in response.content.decode()


def test_the_limits_come_from_the_settings(vic_account, settings):
    settings.A4C_SESSION_IDLE_MINUTES = 5
    client = signed_in_client()
    age(client, last_seen=5 * MINUTE + 1)

    response = client.get("/backups/", follow=True)

    assert "after 5 minutes without activity" in response.content.decode()


def test_sign_out_everywhere_from_the_admin_ends_every_session_of_that_person_only(vic_account):
    other = member("olga", "operators")
    laptop, phone, olga = signed_in_client(), signed_in_client(), signed_in_client("olga")
    admin_user = get_user_model().objects.create_superuser("root", password="pw-root-12345")
    admin = signed_in_client("root")

    response = admin.post(
        "/admin/auth/user/",
        {"action": "sign_out_everywhere_action", "_selected_action": [vic_account.pk]},
        follow=True,
    )

    assert "2 sessions ended" in response.content.decode()
    assert laptop.get("/backups/").status_code == 302
    assert phone.get("/backups/").status_code == 302
    assert olga.get("/backups/").status_code == 200
    assert admin.get("/admin/").status_code == 200
    event = AuditEvent.objects.get(action="auth.signed_out_everywhere")
    assert event.actor == admin_user.username and event.target == "vic"
    assert event.parameters == {"sessions": 2}
    assert other.pk and Session.objects.count() == 2  # olga's and the admin's
