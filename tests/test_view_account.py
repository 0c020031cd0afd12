"""Signing out, the error pages a person can land on, and how pages word sizes and parameters."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from backups import audit
from backups.audit import Actor
from backups.models import Backup, Source
from backups.templatetags.console import parameters, ticks

pytestmark = pytest.mark.django_db(transaction=True)


def test_opening_the_sign_out_address_asks_before_signing_out(client, vic):
    response = client.get("/accounts/logout/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Sign out?" in html and 'method="post"' in html and "csrfmiddlewaretoken" in html
    assert client.get(reverse("backups:dashboard")).status_code == 200, "still signed in"


def test_signing_out_says_so_on_the_sign_in_page(client, vic):
    response = client.post("/accounts/logout/", follow=True)

    assert response.redirect_chain[-1][0] == reverse("login")
    assert "You are signed out." in response.content.decode()
    assert client.get(reverse("backups:dashboard")).status_code == 302


def test_opening_the_sign_out_address_when_signed_out_leads_to_the_sign_in_page(client):
    response = client.get("/accounts/logout/")

    assert response.status_code == 302 and response["Location"] == reverse("login")


def test_an_unknown_address_gets_the_console_s_own_not_found_page(client, vic):
    response = client.get("/backups/99999/")

    html = response.content.decode()
    assert response.status_code == 404
    assert "Not found" in html and "console.css" in html and "Back to the dashboard" in html
    assert "DEBUG" not in html


def test_a_form_sent_with_a_stale_token_gets_a_page_that_says_what_to_do(vic):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(vic)

    response = strict.post("/accounts/logout/")

    html = response.content.decode()
    assert response.status_code == 403
    assert "This form has expired" in html and "reload the page" in html
    assert "console.css" in html and "DEBUG" not in html


def test_pages_show_sizes_through_the_one_size_helper_with_binary_units(client, vic):
    Backup.objects.create(
        name="big", status="succeeded", include_elasticsearch=False, file_bytes=3 * 2**30
    )

    html = client.get(reverse("backups:backup_list")).content.decode()

    assert "3.0 GiB" in html and " GB<" not in html and " MB<" not in html


def test_audit_parameters_read_as_named_values_not_as_a_python_dict(client, vic):
    audit.record(
        Actor("rita", Source.WEB),
        "restore.request",
        target="nightly",
        parameters={"scope": "full", "indices": ["a4c-app", "a4c-user"], "safety_backup": True},
    )

    html = client.get(reverse("backups:audit")).content.decode()

    assert "<dt>safety backup</dt><dd>yes</dd>" in html
    assert "<dt>indices</dt><dd>a4c-app, a4c-user</dd>" in html
    assert "{&#x27;" not in html and "{'" not in html


def test_nested_parameters_are_shown_as_json():
    assert parameters({"plan": {"files": 3}}) == [("plan", '{"files": 3}')]


def test_commands_quoted_in_backticks_are_shown_as_code_and_the_rest_is_escaped():
    assert ticks("Run `manage.py migrate` <now>") == (
        "Run <code>manage.py migrate</code> &lt;now&gt;"
    )
