"""manage.py verify: exit 0 for a whole backup, 5 when a byte changed or a snapshot is gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from commands import manage

from backups import operations
from backups.management import arguments
from backups.models import Backup

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backup(a4c, cli_actor) -> Backup:
    index = a4c.index("csar")
    a4c.cluster.create_index(index, mappings={}, settings={"number_of_replicas": 0})
    a4c.cluster.bulk_index(index, [("1", {"name": "types"})])
    (a4c.data_dir / "csar").mkdir()
    (a4c.data_dir / "csar" / "types.yml").write_text("tosca_definitions_version: 1.3\n" * 50)
    return operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="to-check"), cli_actor).pk
    )


def test_a_whole_backup_verifies_with_exit_0(backup, capsys):
    ran = manage(capsys, "verify", "to-check")

    assert ran.code == 0, ran.err
    assert ran.out == "backup to-check is whole: its snapshot and every file check out\n"
    backup.refresh_from_db()
    assert backup.verify_ok is True


def test_a_changed_byte_in_the_storage_fails_verification_with_exit_5(backup, capsys, settings):
    blob = next(p for p in (Path(settings.A4C_BACKUP_DIR) / "blobs").rglob("*") if p.is_file())
    data = bytearray(blob.read_bytes())
    data[0] ^= 0xFF
    blob.write_bytes(bytes(data))

    ran = manage(capsys, "verify", "to-check", "--json")

    assert ran.code == arguments.VERIFY_FAILED
    report = json.loads(ran.out)
    assert report["ok"] is False and report["problems"]
    assert ran.err.startswith("error: backup to-check failed verification: 1 problem")


def test_a_missing_snapshot_fails_verification_with_exit_5(backup, a4c, capsys, settings):
    a4c.cluster.delete_snapshot(settings.A4C_ES_REPOSITORY, "to-check")

    ran = manage(capsys, "verify", "to-check")

    assert ran.code == arguments.VERIFY_FAILED
    assert "problem: snapshot to-check is missing" in ran.out


def test_verifying_a_failed_backup_is_a_usage_error(a4c, capsys):
    Backup.objects.create(name="broken", status="failed")

    ran = manage(capsys, "verify", "broken")

    assert ran.code == arguments.USAGE and "only a succeeded backup can be verified" in ran.err
