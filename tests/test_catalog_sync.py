"""The backup storage describes itself: records, `sync`, and restoring into a cluster that lost
everything but the storage and the repository (real Elasticsearch, real files)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from fault_support import (
    backed_up,
    lose_the_cluster_state,
    lose_the_console_database,
    tree,
    wait_for,
)

from backups import audit, operations
from backups.errors import InvalidInput
from backups.models import AuditEvent, Backup, Policy, RestoreRun
from backups.operations import records
from backups.storage.catalog import Catalog

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_succeeded_backup_writes_its_record_with_the_history_into_the_storage(
    small_a4c, cli_actor, settings
):
    Policy.objects.create(name="nightly", schedule="0 3 * * *")

    backup = backed_up(cli_actor, "acc1", description="before the upgrade")

    catalog = Catalog(settings.A4C_BACKUP_DIR)
    raw = json.loads((settings.A4C_BACKUP_DIR / "records" / "acc1.json").read_text())
    assert raw["format"] == "a4c-backup-record" and raw["version"] == 1
    record = records.read_record("acc1")
    assert record.set_id == backup.set_id and len(record.set_id) == 32
    assert record.description == "before the upgrade" and record.actor == cli_actor.name
    assert record.trigger == "cli" and record.include_files and record.include_elasticsearch
    assert record.indices[small_a4c.index("application")].docs == 40
    assert record.snapshot_name == "acc1" and record.repository == settings.A4C_ES_REPOSITORY
    assert record.repository_location == settings.A4C_ES_REPOSITORY_PATH
    assert record.es_cluster_uuid == small_a4c.cluster.info().cluster_uuid
    assert record.manifest_sha256 == backup.manifest_sha256 and record.file_count == 2
    assert record.finished_at == backup.finished_at and not record.safety
    history = list(records.read_history("acc1"))
    assert [p.name for p in history if not hasattr(p, "hash")] == ["nightly"]
    actions = [e.action for e in history if hasattr(e, "hash")]
    assert actions[:2] == ["backup.create", "backup.run"]
    leftovers = [p for p in (settings.A4C_BACKUP_DIR / "records").iterdir() if p.name[0] == "."]
    assert leftovers == []

    operations.set_pinned(backup.pk, cli_actor, True)
    assert records.read_record("acc1").pinned is True

    operations.delete_backup(backup.pk, cli_actor)
    assert catalog.names() == [] and not catalog.history_path("acc1").exists()


def test_sync_on_an_empty_database_brings_back_the_sets_and_the_history_once(
    small_a4c, cli_actor, settings
):
    Policy.objects.create(name="nightly", schedule="0 3 * * *", drill_every="weekly")
    first = backed_up(cli_actor, "acc1")
    backed_up(cli_actor, "acc2")
    events_before = AuditEvent.objects.count()
    lose_the_console_database()

    report = operations.sync_catalog(cli_actor)

    assert sorted(report.imported) == ["acc1", "acc2"] and report.problems == []
    row = Backup.objects.get(name="acc1")
    assert row.status == Backup.Status.SUCCEEDED and row.set_id == first.set_id
    assert row.imported_from.startswith(f"backup storage {settings.A4C_BACKUP_DIR}")
    assert row.indices == first.indices and row.manifest_sha256 == first.manifest_sha256
    # acc2's record carries every event up to its own run: all of acc1's, and acc2's first
    imported = AuditEvent.objects.exclude(imported_from="")
    assert report.events_imported == imported.count() >= events_before - 2
    assert {e.action for e in imported} >= {"backup.create", "backup.run"}
    assert report.policies_imported == ["nightly"] and Policy.objects.get().paused
    assert Policy.objects.get().drill_every == "weekly", "its drills come back with it"
    assert audit.verify_chain().ok

    again = operations.sync_catalog(cli_actor)

    assert not again.changed and again.problems == []
    assert Backup.objects.count() == 2 and audit.verify_chain().ok
    assert operations.last_sync()["imported"] == 0


def test_the_worker_syncs_the_catalog_on_its_schedule(
    small_a4c, cli_actor, start_worker, worker_env
):
    backed_up(cli_actor, "acc1")
    lose_the_console_database()

    start_worker(beat=True, A4C_SYNC_SECONDS="1", **worker_env)

    # The sync notes when it ran last, after every row: both there, it has run whole.
    wait_for(
        lambda: operations.last_sync() and Backup.objects.filter(name="acc1").exists(),
        60,
        "the scheduled sync",
    )
    assert Backup.objects.get(name="acc1").imported_from.startswith("backup storage")


def test_a_worker_syncs_the_catalog_as_it_starts_so_the_page_never_says_never_synced(
    client, rita, take, start_worker, worker_env
):
    take("files-1", include_elasticsearch=False)
    lose_the_console_database()
    before = client.get(reverse("backups:backup_list")).content.decode()

    # No beat, and its tick an hour away: only the worker's start can sync.
    start_worker(A4C_SYNC_SECONDS="3600", **worker_env)

    wait_for(
        lambda: operations.last_sync() and Backup.objects.filter(name="files-1").exists(),
        60,
        "the sync at the worker's start",
    )
    after = client.get(reverse("backups:backup_list")).content.decode()
    assert "Catalog never synced" in before and "a worker syncs it when it starts" in before
    assert "Catalog never synced" not in after and "Catalog last synced" in after
    event = AuditEvent.objects.get(action="catalog.sync")
    assert event.actor == "sync" and event.parameters["imported"] == ["files-1"]


def test_sync_flags_a_vanished_set_and_refuses_to_restore_it(small_a4c, cli_actor, settings):
    backup = backed_up(cli_actor, "acc1")
    record = settings.A4C_BACKUP_DIR / "records" / "acc1.json"
    hidden = record.with_name("hidden")
    record.rename(hidden)

    report = operations.sync_catalog(cli_actor)

    assert report.vanished == ["acc1"]
    backup.refresh_from_db()
    assert backup.vanished_at is not None
    with pytest.raises(InvalidInput, match="gone from the backup storage"):
        operations.plan_restore(operations.RestoreRequest(backup.pk))

    hidden.rename(record)
    assert operations.sync_catalog(cli_actor).returned == ["acc1"]
    assert operations.sync_catalog(cli_actor).changed is False


def test_sync_reports_bad_records_and_imports_nothing_of_them(small_a4c, cli_actor, settings):
    backed_up(cli_actor, "acc1")
    records = settings.A4C_BACKUP_DIR / "records"
    data = json.loads((records / "acc1.json").read_text())
    newer = {**data, "version": 2}
    newer["record"] = {**data["record"], "name": "from-the-future"}
    (records / "from-the-future.json").write_text(json.dumps(newer))
    twin = {**data, "record": {**data["record"], "set_id": "f" * 32, "name": "acc1"}}
    del twin["signature"]  # changed: a signature kept would be refused as forged first
    (records / "twin.json").write_text(json.dumps(twin))
    no_snapshot = {**data, "record": {**data["record"], "name": "nosnap", "set_id": "e" * 32}}
    no_snapshot["record"]["snapshot_name"] = "nosnap"
    no_snapshot["record"]["include_files"] = False
    del no_snapshot["signature"]  # unsigned: taken in as foreign, when it holds together
    (records / "nosnap.json").write_text(json.dumps(no_snapshot))
    lose_the_console_database()

    report = operations.sync_catalog(cli_actor, foreign=True)

    assert report.imported == ["acc1"]
    text = "\n".join(report.problems)
    assert "written by a newer a4c-backup (record format 2" in text
    assert "claims the name 'acc1': two sets claim one name" in text
    assert "nosnap was not imported: its snapshot nosnap is missing from the repository" in text
    assert list(Backup.objects.values_list("name", flat=True)) == ["acc1"]


def test_a_set_taken_by_another_console_on_the_same_storage_is_listed_after_sync(
    small_a4c, cli_actor, settings, tmp_path
):
    backed_up(cli_actor, "mine")
    other_db = tmp_path / "other-console.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{other_db}",
        "A4C_DATA_DIR": str(small_a4c.data_dir),
        "A4C_BACKUP_DIR": str(settings.A4C_BACKUP_DIR),
        "A4C_ES_REPOSITORY": settings.A4C_ES_REPOSITORY,
        "A4C_ES_REPOSITORY_PATH": settings.A4C_ES_REPOSITORY_PATH,
        "A4C_INDEX_INCLUDE": ",".join(settings.A4C_INDEX_INCLUDE),
        "A4C_POLL_SECONDS": "0.1",
    }

    def other_console(*args):
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=django_settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    other_console("migrate", "--no-input")
    other_console("backup", "--name", "theirs")
    synced = json.loads(other_console("sync", "--json"))

    report = operations.sync_catalog(cli_actor)

    assert synced["imported"] == ["mine"]
    assert report.imported == ["theirs"]
    theirs = Backup.objects.get(name="theirs")
    assert f"taken by {os.uname().nodename}:{other_db}" in theirs.imported_from
    assert audit.verify_chain().ok
    with pytest.raises(InvalidInput, match="exists already"):
        operations.request_backup(operations.BackupRequest(name="theirs"), cli_actor)


def test_a_restore_registers_a_lost_repository_and_brings_everything_back(
    small_a4c, cli_actor, settings
):
    before_es, before_files = small_a4c.state(), tree(small_a4c.data_dir)
    backup = backed_up(cli_actor, "acc1")
    lose_the_cluster_state(small_a4c, settings)
    (small_a4c.data_dir / "images" / "logo.png").unlink()

    run = operations.request_restore(
        operations.RestoreRequest(backup.pk, safety_backup=False), cli_actor, confirm="acc1"
    )
    run = operations.run_restore(run.pk)

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert small_a4c.state() == before_es and tree(small_a4c.data_dir) == before_files
    location = small_a4c.cluster.repository_location(settings.A4C_ES_REPOSITORY)
    assert location == settings.A4C_ES_REPOSITORY_PATH


def test_a_backup_from_another_cluster_is_restored_only_when_confirmed_and_read_only(
    small_a4c, cli_actor, settings
):
    before = small_a4c.state()
    backup = backed_up(cli_actor, "acc1")
    Backup.objects.filter(pk=backup.pk).update(es_cluster_name="lost", es_cluster_uuid="x" * 22)
    lose_the_cluster_state(small_a4c, settings)

    plan = operations.plan_restore(operations.RestoreRequest(backup.pk))
    assert "was taken on cluster lost (xxxxxxxxxxxxxxxxxxxxxx)" in plan.other_cluster
    with pytest.raises(InvalidInput, match="Confirm that you restore into another cluster"):
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor, confirm="acc1")

    run = operations.request_restore(
        operations.RestoreRequest(backup.pk, other_cluster=True, safety_backup=False),
        cli_actor,
        confirm="acc1",
    )
    run = operations.run_restore(run.pk)

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert small_a4c.state() == before
    registered = small_a4c.cluster.client.snapshot.get_repository(name=settings.A4C_ES_REPOSITORY)[
        settings.A4C_ES_REPOSITORY
    ]
    assert registered["settings"]["readonly"] == "true"
    asked = AuditEvent.objects.get(action="restore.request", outcome="requested")
    assert asked.parameters["other_cluster"] is True
    small_a4c.cluster.delete_repository(settings.A4C_ES_REPOSITORY)  # read-only: no cleanup


def test_a_history_written_under_another_audit_key_comes_in_marked_so(
    small_a4c, cli_actor, settings
):
    """The lost host took its var/ and so its A4C_AUDIT_KEY: the new one has its own."""
    backed_up(cli_actor, "acc1")
    lose_the_console_database()
    settings.A4C_AUDIT_KEY = "the-new-machine-s-own-key"

    report = operations.sync_catalog(cli_actor)

    assert report.events_imported > 0 and report.problems == []
    event = AuditEvent.objects.exclude(imported_from="").first()
    assert "written under another A4C_AUDIT_KEY" in event.imported_from
    assert audit.verify_chain().ok


def test_the_history_carried_by_a_record_is_not_imported_when_it_was_tampered_with(
    small_a4c, cli_actor, settings
):
    backed_up(cli_actor, "acc1")
    path = settings.A4C_BACKUP_DIR / "records" / "acc1.history.jsonl.gz"
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    lines[1] = lines[1].replace(cli_actor.name.encode(), b"mallory", 1)
    path.write_bytes(gzip.compress(b"".join(lines)))
    lose_the_console_database()

    report = operations.sync_catalog(cli_actor)

    assert report.imported == ["acc1"] and report.events_imported == 0
    assert "was changed after it was written; nothing of it was imported" in report.problems[0]
    assert audit.verify_chain().ok
