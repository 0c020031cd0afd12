"""Who may do what: viewers see, operators also back up, restorers also restore and delete.

Every refusal is a 403 page and an audit event with the outcome "denied"; sign-ins and
sign-outs are in the audit history too.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.urls import reverse
from people import member

import backups.signals  # noqa: F401 - connects the sign-in receivers (apps.ready does it too)
from backups.models import AuditEvent, Backup, RestoreRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rows(settings, tmp_path, monkeypatch):
    """Rows to act on, with storage in a temporary directory and no broker."""
    settings.A4C_BACKUP_DIR = tmp_path / "storage"
    settings.A4C_DATA_DIR = tmp_path / "data"
    settings.A4C_DATA_DIR.mkdir()
    settings.A4C_INDEX_INCLUDE = ["no-such-prefix-*"]
    monkeypatch.setattr("backups.tasks.run_backup.delay", lambda pk: SimpleNamespace(id="b"))
    monkeypatch.setattr("backups.tasks.run_restore.delay", lambda pk: SimpleNamespace(id="r"))
    done = Backup.objects.create(
        name="done", status="succeeded", actor="x", include_elasticsearch=False
    )
    running = Backup.objects.create(name="running", status="running", actor="x")
    run = RestoreRun.objects.create(backup=done, status="running", actor="x")
    finished = RestoreRun.objects.create(backup=done, status="succeeded", actor="x")
    return {"done": done.pk, "running": running.pk, "run": run.pk, "finished": finished.pk}


# (name, method, url name, url argument from rows, form data, roles allowed, denied action)
ACTIONS = [
    ("dashboard", "get", "backups:dashboard", None, None, "vor", "page.view"),
    ("backup list", "get", "backups:backup_list", None, None, "vor", "page.view"),
    ("backup page", "get", "backups:backup_detail", "done", None, "vor", "page.view"),
    ("restore page", "get", "backups:restore_detail", "run", None, "vor", "page.view"),
    ("audit", "get", "backups:audit", None, None, "vor", "page.view"),
    ("new backup form", "get", "backups:backup_new", None, None, "or", "backup.create"),
    (
        "create backup",
        "post",
        "backups:backup_new",
        None,
        {"name": "new-one", "include_files": "on"},
        "or",
        "backup.create",
    ),
    ("verify", "post", "backups:backup_verify", "done", {}, "or", "backup.verify"),
    ("drill", "post", "backups:backup_drill", "done", {}, "or", "drill.request"),
    ("cancel backup", "post", "backups:backup_cancel", "running", {}, "or", "backup.cancel"),
    ("cancel restore", "post", "backups:restore_cancel", "run", {}, "or", "restore.cancel"),
    ("restore form", "get", "backups:restore_new", None, None, "r", "restore.request"),
    (
        "start restore",
        "post",
        "backups:restore_new",
        None,
        {"backup": "done", "scope": "files", "file_mode": "mirror", "confirm": "done"},
        "r",
        "restore.request",
    ),
    ("roll back", "post", "backups:restore_rollback", "finished", {}, "r", "restore.rollback"),
    ("delete form", "get", "backups:backup_delete", "done", None, "r", "backup.delete"),
    ("delete", "post", "backups:backup_delete", "done", {}, "r", "backup.delete"),
    ("pin", "post", "backups:backup_pin", "done", {"pinned": "1"}, "r", "backup.pin"),
]
ROLE_OF = {"v": "viewers", "o": "operators", "r": "restorers"}


def call(client, rows, method, url_name, arg, data):
    url = reverse(url_name, args=[rows[arg]] if arg else [])
    if data is not None:
        data = {k: rows.get(v, v) if k == "backup" else v for k, v in data.items()}
    return getattr(client, method)(url, data or {})


@pytest.mark.parametrize("letter", ["v", "o", "r"], ids=["viewer", "operator", "restorer"])
@pytest.mark.parametrize(
    "name,method,url_name,arg,data,allowed,action", ACTIONS, ids=[a[0] for a in ACTIONS]
)
def test_each_role_is_allowed_or_refused_each_action(
    client, rows, letter, name, method, url_name, arg, data, allowed, action
):
    user = member(f"{ROLE_OF[letter]}-user", ROLE_OF[letter])
    client.force_login(user)

    response = call(client, rows, method, url_name, arg, data)

    denied = AuditEvent.objects.filter(outcome="denied", actor=user.username)
    if letter in allowed:
        assert response.status_code in (200, 302), response.content[:400]
        assert not denied.exists()
    else:
        assert response.status_code == 403
        assert "Not allowed" in response.content.decode()
        event = denied.get()
        assert event.action == action
        # Recorded against what the person was refused: the backup (a restore's backup), by name.
        named = rows[arg] if arg else (rows["done"] if data and "backup" in data else None)
        if arg in ("run", "finished"):
            named = rows["done"]
        expected = Backup.objects.get(pk=named).name if named else response.wsgi_request.path
        assert event.target == expected
        assert event.ip == "127.0.0.1"


def test_a_signed_in_person_in_no_group_sees_nothing_and_is_recorded(client, rows):
    client.force_login(member("nobody", None))

    response = client.get(reverse("backups:backup_list"))

    assert response.status_code == 403
    assert AuditEvent.objects.get(outcome="denied").action == "page.view"


def test_a_refused_post_changes_nothing(client, rows):
    client.force_login(member("vic", "viewers"))

    client.post(reverse("backups:backup_delete", args=[rows["done"]]))
    client.post(reverse("backups:backup_new"), {"name": "sneaky", "include_files": "on"})

    assert Backup.objects.get(pk=rows["done"]).status == "succeeded"
    assert not Backup.objects.filter(name="sneaky").exists()


def test_forms_without_the_csrf_token_are_rejected(rows):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(member("rex", "restorers"))

    response = strict.post(reverse("backups:backup_delete", args=[rows["done"]]))

    assert response.status_code == 403
    assert Backup.objects.get(pk=rows["done"]).status == "succeeded"


def test_signing_in_and_out_is_recorded_with_the_address(client):
    member("olga", "operators")

    client.post(
        reverse("login"), {"username": "olga", "password": "pw-olga-12345"}, REMOTE_ADDR="10.1.2.3"
    )
    client.post(reverse("logout"))

    events = list(AuditEvent.objects.order_by("id").values_list("action", "actor", "outcome", "ip"))
    assert events == [
        ("auth.login", "olga", "succeeded", "10.1.2.3"),
        ("auth.logout", "olga", "succeeded", "127.0.0.1"),
    ]


def test_a_failed_sign_in_is_recorded_with_the_name_that_was_tried(client):
    member("olga", "operators")

    client.post(reverse("login"), {"username": "olga", "password": "guess"})

    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.target, event.outcome) == (
        "auth.login_failed",
        "anonymous",
        "olga",
        "failed",
    )


def test_a_refusal_is_recorded_against_the_backup_s_name_not_the_url(client, rows):
    client.force_login(member("vic", "viewers"))

    client.post(reverse("backups:backup_delete", args=[rows["done"]]))

    denied = AuditEvent.objects.get(outcome="denied")
    backup = Backup.objects.get(pk=rows["done"])
    assert denied.target == backup.name and denied.backup_id == backup.pk
