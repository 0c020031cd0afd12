"""Sign-in throttling: too many failures for one user, or from one address, refuse sign-ins
for the cool-off; each lock is audited, and `manage.py unlock` lifts it."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from people import member

from backups.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 5  # A4C_LOGIN_FAILURE_LIMIT's default


def sign_in(username: str, password: str, address: str = "192.0.2.10", path="/accounts/login/"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(path, {"username": username, "password": password})
    return client, response


def signed_in(client: Client) -> bool:
    return client.get("/backups/").status_code == 200


def test_after_five_failures_for_one_user_even_the_right_password_is_refused_with_a_clear_page():
    member("vic", "viewers")
    for n in range(LIMIT):
        sign_in("vic", "wrong", address=f"192.0.2.{n + 1}")  # each from another address

    client, response = sign_in("vic", "pw-vic-12345", address="198.51.100.7")

    html = response.content.decode()
    assert response.status_code == 429
    assert "Sign-in refused for now" in html and "Try again in 15 minutes" in html
    assert "manage.py unlock" in html
    assert not signed_in(client)
    # The lock at the fifth failure, then each attempt refused while it holds.
    locks = AuditEvent.objects.filter(action="auth.locked_out").order_by("id")
    assert locks.count() == 2
    assert all(e.target == "vic" and e.outcome == "refused" for e in locks)
    assert "refused for 15 minutes after 5 failures" in locks[0].message


def test_after_five_failures_from_one_address_every_user_is_refused_there_but_not_elsewhere():
    member("vic", "viewers")
    for n in range(LIMIT):
        sign_in(f"guess{n}", "wrong", address="203.0.113.9")  # another name each time

    _, there = sign_in("vic", "pw-vic-12345", address="203.0.113.9")
    elsewhere, other = sign_in("vic", "pw-vic-12345", address="198.51.100.7")

    assert there.status_code == 429
    assert other.status_code == 302 and signed_in(elsewhere)
    locks = AuditEvent.objects.filter(action="auth.locked_out")
    assert {e.parameters["address"] for e in locks} == {"203.0.113.9"}


def test_four_failures_do_not_lock_and_a_success_in_between_does_not_wipe_them():
    member("vic", "viewers")
    member("mallory", "viewers")
    for _ in range(LIMIT - 1):
        sign_in("vic", "wrong", address="203.0.113.9")
    # Someone with an account of their own signs in from the same address...
    client, response = sign_in("mallory", "pw-mallory-12345", address="203.0.113.9")
    assert response.status_code == 302 and signed_in(client)

    # ...and the fifth guess still counts: guesses cannot be interleaved with sign-ins.
    sign_in("vic", "wrong", address="203.0.113.9")
    _, after = sign_in("vic", "pw-vic-12345", address="198.51.100.7")

    assert after.status_code == 429


def test_the_admin_sign_in_page_is_held_by_the_same_lock():
    member("root", None).__class__.objects.filter(username="root").update(
        is_staff=True, is_superuser=True
    )
    for _ in range(LIMIT):
        sign_in("root", "wrong")

    client, response = sign_in(
        "root", "pw-root-12345", address="198.51.100.7", path="/admin/login/?next=/admin/"
    )

    assert response.status_code == 429
    assert client.get("/admin/").status_code == 302  # still signed out


def test_pages_and_metrics_take_no_password_so_they_are_no_way_around_a_lock(settings):
    settings.A4C_METRICS_TOKEN = "metrics-token"
    member("vic", "viewers")
    basic = "Basic " + base64.b64encode(b"vic:pw-vic-12345").decode()
    client = Client(REMOTE_ADDR="192.0.2.50")

    fragment = client.get("/live/dashboard/", HTTP_AUTHORIZATION=basic)
    name_check = client.get("/backups/new/check-name/?name=x", HTTP_AUTHORIZATION=basic)
    metrics = client.get("/metrics", HTTP_AUTHORIZATION=basic)

    assert fragment.status_code == 302 and "/accounts/login/" in fragment["Location"]
    assert name_check.status_code == 302 and "/accounts/login/" in name_check["Location"]
    assert metrics.status_code == 403


def test_the_lock_ends_by_itself_when_the_cool_off_has_passed():
    member("vic", "viewers")
    for _ in range(LIMIT):
        sign_in("vic", "wrong")
    # Fifteen minutes and a second ago, without waiting for them.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=15, seconds=1))

    client, response = sign_in("vic", "pw-vic-12345")

    assert response.status_code == 302 and signed_in(client)


def test_unlock_lifts_a_user_s_lock_at_once_and_is_audited(capsys):
    member("vic", "viewers")
    for n in range(LIMIT):
        sign_in("vic", "wrong", address=f"192.0.2.{n + 1}")

    call_command("unlock", user="vic")

    assert "Lifted: vic may sign in again" in capsys.readouterr().out
    client, response = sign_in("vic", "pw-vic-12345", address="198.51.100.7")
    assert response.status_code == 302 and signed_in(client)
    lift = AuditEvent.objects.get(action="auth.unlocked")
    assert lift.source == "cli" and lift.target == "vic" and lift.parameters["records"] >= 1


def test_unlock_lifts_an_address_s_lock(capsys):
    member("vic", "viewers")
    for n in range(LIMIT):
        sign_in(f"guess{n}", "wrong", address="203.0.113.9")

    call_command("unlock", address="203.0.113.9")

    _, response = sign_in("vic", "pw-vic-12345", address="203.0.113.9")
    assert response.status_code == 302
    assert AuditEvent.objects.get(action="auth.unlocked").target == "203.0.113.9"


def test_unlock_without_a_user_or_an_address_says_what_it_needs():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="name a --user, an --address, or both"):
        call_command("unlock")
