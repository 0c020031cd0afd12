"""Secrets an installation makes for itself, and the audit chain they seal."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
from importlib import import_module

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from a4c_backup.keyfile import read_or_create
from backups import audit
from backups.models import AuditChainHead, AuditEvent

RESEAL = import_module("backups.migrations.0006_keyed_audit_chain")


def test_a_missing_secret_is_generated_once_and_only_its_owner_may_read_it(tmp_path):
    path = tmp_path / "var" / "secret-key"

    first = read_or_create(path, "DJANGO_SECRET_KEY")
    again = read_or_create(path, "DJANGO_SECRET_KEY")

    assert first == again and len(first) >= 50
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_key_file_made_readable_by_others_is_narrowed_back_to_its_owner(tmp_path):
    path = tmp_path / "secret-key"
    path.write_text("kept-as-it-is\n")
    os.chmod(path, 0o644)

    assert read_or_create(path, "DJANGO_SECRET_KEY") == "kept-as-it-is"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_directory_where_no_key_can_be_kept_names_the_setting_to_use_instead(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")

    with pytest.raises(ImproperlyConfigured, match="set DJANGO_SECRET_KEY"):
        read_or_create(blocker / "secret-key", "DJANGO_SECRET_KEY")


def settings_in_a_fresh_process(tmp_path, **env_extra) -> dict:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "A4C_VAR_DIR": str(tmp_path / "var"),
        "A4C_LEGACY_CONFIG": str(tmp_path / "absent.yml"),
        "DJANGO_SETTINGS_MODULE": "a4c_backup.settings",
        **env_extra,
    }
    code = (
        "import json; from django.conf import settings as s; "
        "print(json.dumps([s.SECRET_KEY, s.A4C_AUDIT_KEY]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    secret, audit_key = json.loads(done.stdout)
    return {"secret": secret, "audit": audit_key}


def test_an_install_without_DJANGO_SECRET_KEY_gets_its_own_random_keys_kept_under_var(tmp_path):
    first = settings_in_a_fresh_process(tmp_path)
    second = settings_in_a_fresh_process(tmp_path)
    elsewhere = settings_in_a_fresh_process(tmp_path / "other")

    assert first == second, "every process of one install reads the same keys"
    assert first["secret"] != elsewhere["secret"] and first["audit"] != elsewhere["audit"]
    assert "not-secret" not in first["secret"] and first["secret"] != first["audit"]
    assert (tmp_path / "var" / "secret-key").read_text().strip() == first["secret"]
    assert stat.S_IMODE((tmp_path / "var" / "audit-key").stat().st_mode) == 0o600


def test_keys_set_in_the_environment_win_and_no_file_is_made(tmp_path):
    keys = settings_in_a_fresh_process(
        tmp_path, DJANGO_SECRET_KEY="from-the-env", A4C_AUDIT_KEY="audit-from-the-env"
    )

    assert keys == {"secret": "from-the-env", "audit": "audit-from-the-env"}
    assert not (tmp_path / "var" / "secret-key").exists()


# --- the audit chain, keyed -------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


@pytest.fixture
def history(web_actor, cli_actor):
    audit.record(web_actor, "auth.login", outcome="succeeded")
    audit.record(cli_actor, "backup.create", target="nightly", parameters={"files": True})
    audit.record(cli_actor, "backup.run", target="nightly", outcome="succeeded")
    audit.record(web_actor, "backup.delete", target="nightly", outcome="succeeded")
    return list(AuditEvent.objects.order_by("id"))


def rewrite_history(events, actor: str, seal) -> None:
    """What someone with write access to the database could do: change an event, recompute
    every hash after it with ``seal`` and move the head."""
    prev = audit.GENESIS
    with connection.cursor() as cursor:
        for event in events:
            if event.action == "backup.delete":
                event.actor = actor
            event.prev_hash = prev
            event.hash = seal(event.canonical())
            cursor.execute(
                "UPDATE backups_auditevent SET actor = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [event.actor, event.prev_hash, event.hash, event.id],
            )
            prev = event.hash
        cursor.execute("UPDATE backups_auditchainhead SET last_hash = %s WHERE id = 1", [prev])


@pytestmark_db
def test_a_history_rewritten_without_the_audit_key_is_caught(history):
    assert audit.verify_chain().ok

    rewrite_history(history, "mallory", lambda data: hashlib.sha256(data).hexdigest())
    report = audit.verify_chain()

    assert not report.ok and report.event_id == history[0].id


@pytestmark_db
def test_a_history_rewritten_with_a_guessed_key_is_caught_and_the_key_is_named(history):
    guessed = b"a4c-backup-local-only-not-secret"
    rewrite_history(
        history, "mallory", lambda data: hmac.new(guessed, data, hashlib.sha256).hexdigest()
    )

    report = audit.verify_chain()

    assert not report.ok and "A4C_AUDIT_KEY" in report.problem


@pytestmark_db
def test_the_history_is_resealed_with_the_key_when_upgrading_and_breaks_stay_where_they_were(
    history,
):
    RESEAL.plain(apps, None)  # as an install written before the key existed
    assert not audit.verify_chain().ok

    RESEAL.keyed(apps, None)
    assert audit.verify_chain().ok
    assert (
        AuditChainHead.objects.get(pk=1).last_hash == AuditEvent.objects.order_by("id").last().hash
    )

    RESEAL.plain(apps, None)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE backups_auditevent SET actor = 'mallory' WHERE id = %s", [history[2].id]
        )
    RESEAL.keyed(apps, None)
    report = audit.verify_chain()

    assert not report.ok and report.event_id == history[2].id
