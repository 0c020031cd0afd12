"""manage.py verify: exit 0 for a whole backup, 5 when a byte changed or a snapshot is gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from commands import manage

from backups.management import arguments
from backups.models import Backup

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_whole_backup_verifies_with_exit_0(backup, capsys):
    ran = manage(capsys, "verify", "nightly-1")

    assert ran.code == 0, ran.err
    assert ran.out == "backup nightly-1 is whole: its snapshot and every file check out\n"
    backup.refresh_from_db()
    assert backup.verify_ok is True


def test_a_changed_byte_in_the_storage_fails_verification_with_exit_5(backup, capsys, settings):
    blob = next(p for p in (Path(settings.A4C_BACKUP_DIR) / "blobs").rglob("*") if p.is_file())
    data = bytearray(blob.read_bytes())
    data[0] ^= 0xFF
    blob.write_bytes(bytes(data))

    ran = manage(capsys, "verify", "nightly-1", "--json")

    assert ran.code == arguments.VERIFY_FAILED
    report = json.loads(ran.out)
    assert report["ok"] is False and report["problems"]
    assert ran.err.startswith("error: backup nightly-1 failed verification: 1 problem")


def test_a_missing_snapshot_fails_verification_with_exit_5(backup, a4c, capsys, settings):
    a4c.cluster.delete_snapshot(settings.A4C_ES_REPOSITORY, "nightly-1")

    ran = manage(capsys, "verify", "nightly-1")

    assert ran.code == arguments.VERIFY_FAILED
    assert "problem: snapshot nightly-1 is missing" in ran.out


def test_verifying_a_failed_backup_is_a_usage_error(a4c, capsys):
    Backup.objects.create(name="broken", status="failed")

    ran = manage(capsys, "verify", "broken")

    assert ran.code == arguments.USAGE and "only a succeeded backup can be verified" in ran.err
