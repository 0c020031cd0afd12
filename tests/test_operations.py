"""The engine against the real Elasticsearch and real files: backup, restore, rollback, locking."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from django.db import connection
from fault_support import tree

from backups import audit, operations, polling
from backups.errors import Busy, InvalidInput, NotFound
from backups.models import AuditEvent, Backup, OperationLock, RestoreRun
from backups.operations import restore as restore_ops
from backups.operations.plan import Plan
from backups.storage import InPlaceStaged, Store, WorkingTree

pytestmark = pytest.mark.django_db(transaction=True)


def backed_up(actor, name, **kwargs) -> Backup:
    backup = operations.request_backup(operations.BackupRequest(name=name, **kwargs), actor)
    backup = operations.run_backup(backup.pk)
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    return backup


def restored(backup, actor, **kwargs) -> RestoreRun:
    run = operations.request_restore(
        operations.RestoreRequest(backup.pk, **kwargs), actor, confirm=backup.name
    )
    run = operations.run_restore(run.pk)
    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    return run


def change_everything(a4c) -> None:
    """Deletes, adds and edits documents, indices and files, as weeks of use would."""
    client = a4c.cluster.client
    apps = a4c.documents("application")
    first, second = sorted(apps)[:2]
    client.delete(index=a4c.index("application"), id=first, refresh=True)
    client.update(
        index=a4c.index("application"), id=second, doc={"name": "renamed-by-test"}, refresh=True
    )
    client.index(
        index=a4c.index("user"), id="intruder", document={"username": "intruder"}, refresh=True
    )
    client.indices.delete(index=a4c.index("plugin"))
    client.indices.create(index=a4c.index("brandnew"), settings={"number_of_replicas": 0})
    data = a4c.data_dir
    csar = next((data / "csar").iterdir())
    version = next(p for p in csar.iterdir() if p.is_dir() and not p.is_symlink())
    (version / "content.json").write_text('{"changed": true}')
    (data / "artifacts" / "added-later.bin").write_bytes(os.urandom(2048))
    victim = next(p for p in (data / "images").iterdir())
    victim.unlink()
    os.chmod(next((data / "plugins").rglob("*.yml")), 0o600)
    (data / "new-empty-dir").mkdir()


def test_a_backup_then_restore_brings_back_every_index_and_file_after_changes(installed, cli_actor):
    a4c = installed
    before_es, before_files = a4c.state(), tree(a4c.data_dir)
    backup = backed_up(cli_actor, "full-1", description="before the changes")

    assert backup.index_count >= 25
    assert backup.indices[a4c.index("application")]["docs"] == len(
        before_es[a4c.index("application")]["docs"]
    )
    assert backup.file_count == sum(1 for v in before_files.values() if v[0] == "file")
    assert backup.es_cluster_uuid and backup.es_version.startswith(("8.", "9."))
    snap = a4c.cluster.snapshot(backup.repository, backup.snapshot_name)
    assert snap.state == "SUCCESS" and snap.metadata["a4c_backup"] == "full-1"

    change_everything(a4c)
    assert a4c.state() != before_es and tree(a4c.data_dir) != before_files

    run = restored(backup, cli_actor)

    assert a4c.state() == before_es
    assert tree(a4c.data_dir) == before_files
    assert (a4c.data_dir / "work").is_dir(), "caches are carried over, not dropped"
    assert run.safety_backup is not None and run.safety_backup.status == Backup.Status.SUCCEEDED
    assert run.safety_backup.trigger == Backup.Trigger.SAFETY
    assert a4c.index("brandnew") in {
        step.target for step in Plan.from_json(run.plan).indices if step.action == "remove"
    }
    phases = [p["name"] for p in run.phases]
    # the new tree is built (every blob re-hashed) first, swapped in after Elasticsearch
    assert phases[:7] == [
        "plan",
        "checking the backup",
        "files",
        "safety backup",
        "pre-command",
        "elasticsearch",
        "files: swap",
    ]
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "outcome"))
    assert ("backup.run", "succeeded") in actions and ("restore.run", "succeeded") in actions
    assert ("restore.request", "requested") in actions
    assert audit.verify_chain().ok


def test_a_second_backup_of_unchanged_data_stores_no_new_blob_and_reads_no_file(
    installed, cli_actor
):
    first = backed_up(cli_actor, "first", include_elasticsearch=False)
    blobs_before = sorted(
        p.name for p in (Path(first_storage()) / "blobs").rglob("*") if p.is_file()
    )

    second = backed_up(cli_actor, "second", include_elasticsearch=False)

    assert first.new_bytes > 0 and first.files_reused == 0
    assert second.new_bytes == 0
    assert second.files_reused == second.file_count == first.file_count
    assert (
        sorted(p.name for p in (Path(first_storage()) / "blobs").rglob("*") if p.is_file())
        == blobs_before
    )


def first_storage() -> str:
    from django.conf import settings

    return str(settings.A4C_BACKUP_DIR)


def test_restoring_chosen_indices_touches_no_other_index_nor_any_file(installed, cli_actor):
    a4c = installed
    backup = backed_up(cli_actor, "chosen")
    change_everything(a4c)
    after_change_es, after_change_files = a4c.state(), tree(a4c.data_dir)

    restored(
        backup, cli_actor, scope="indices", indices=[a4c.index("application"), a4c.index("plugin")]
    )

    now = a4c.state()
    assert now[a4c.index("application")]["docs"] == backup_docs(a4c, backup, "application")
    assert a4c.index("plugin") in now, "a deleted chosen index comes back"
    for index in after_change_es:
        if index not in (a4c.index("application"), a4c.index("plugin")):
            assert now[index] == after_change_es[index], index
    assert tree(a4c.data_dir) == after_change_files


def backup_docs(a4c, backup, name):
    """The documents an index held when the backup was taken, read from a fresh restore copy."""
    client = a4c.cluster.client
    target = f"{a4c.prefix}copy-{name}"
    client.snapshot.restore(
        repository=backup.repository,
        snapshot=backup.snapshot_name,
        indices=a4c.index(name),
        rename_pattern="(.+)",
        rename_replacement=target,
        index_settings={"index.number_of_replicas": 0},
        wait_for_completion=True,
    )
    client.indices.refresh(index=target)
    hits = client.search(index=target, size=10000)["hits"]["hits"]
    client.indices.delete(index=target)
    return {h["_id"]: h["_source"] for h in hits}


def test_a_files_only_restore_leaves_elasticsearch_alone(installed, cli_actor):
    a4c = installed
    before_files = tree(a4c.data_dir)
    backup = backed_up(cli_actor, "files-too")
    change_everything(a4c)
    changed_es = a4c.state()

    run = restored(backup, cli_actor, scope="files")

    assert tree(a4c.data_dir) == before_files
    assert a4c.state() == changed_es
    assert run.safety_backup.include_elasticsearch is False


def test_an_elasticsearch_only_restore_leaves_the_files_alone(installed, cli_actor):
    a4c = installed
    before_es = a4c.state()
    backup = backed_up(cli_actor, "es-too")
    change_everything(a4c)
    changed_files = tree(a4c.data_dir)

    restored(backup, cli_actor, scope="elasticsearch")

    assert a4c.state() == before_es
    assert tree(a4c.data_dir) == changed_files


@pytest.fixture
def waits(monkeypatch) -> list[list[float]]:
    """The sleeps each polling loop asked for, one list per loop, in order."""
    loops: list[list[float]] = []

    class RecordingPoller(polling.Poller):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            loops.append([])

        def wait(self) -> float:
            seconds = super().wait()
            loops[-1].append(seconds)
            return seconds

    monkeypatch.setattr(polling, "Poller", RecordingPoller)
    return loops


def test_a_running_snapshot_is_looked_at_soon_then_at_the_configured_pace(
    small_a4c, cli_actor, settings, waits
):
    settings.A4C_POLL_SECONDS = 0.4

    backup = backed_up(cli_actor, "es-paced", include_files=False)

    assert backup.index_count == 2
    # Its progress, then its final description: each wait begins short, so a snapshot done in
    # 50 ms is seen done then, not after a whole A4C_POLL_SECONDS.
    assert len(waits) == 2
    for loop in waits:
        assert loop == pytest.approx([min(0.05 * 2**n, 0.4) for n in range(len(loop))])


def test_a_restore_ends_as_its_shards_start_with_elasticsearch_holding_the_wait(
    small_a4c, cli_actor, waits
):
    before = small_a4c.state()
    backup = backed_up(cli_actor, "es-held", include_files=False)
    waits.clear()

    restored(backup, cli_actor, scope="elasticsearch", safety_backup=False)

    # Asked the moment the restore says it is done: nothing may still be starting.
    health = small_a4c.cluster.client.cluster.health(index=f"{small_a4c.prefix}*")
    assert health["status"] == "green" and health["initializing_shards"] == 0, health
    assert waits == []  # no sleep between looks: each health request waited in Elasticsearch
    assert small_a4c.state() == before


def test_a_failure_in_the_middle_of_a_restore_puts_everything_back_as_before(
    installed, cli_actor, monkeypatch
):
    a4c = installed
    backup = backed_up(cli_actor, "to-fail")
    change_everything(a4c)
    before_es, before_files = a4c.state(), tree(a4c.data_dir)

    def broken_swap(self, *args, **kwargs):
        # Elasticsearch was already restored when the files step breaks.
        assert a4c.state() != before_es
        raise OSError(5, "Input/output error (injected)")

    monkeypatch.setattr(InPlaceStaged, "swap", broken_swap)  # the data dir exists
    run = operations.request_restore(
        operations.RestoreRequest(backup.pk), cli_actor, confirm="to-fail"
    )
    run = operations.run_restore(run.pk)

    assert run.status == RestoreRun.Status.ROLLED_BACK
    assert "injected" in run.error_message and "put back" in run.error_message
    assert a4c.state() == before_es
    assert tree(a4c.data_dir) == before_files
    assert OperationLock.objects.get(pk=1).kind == ""
    assert AuditEvent.objects.filter(action="restore.rollback", outcome="rolled_back").count() == 1


def test_a_failure_while_swapping_files_is_rolled_back_from_the_kept_old_tree(
    installed, cli_actor, monkeypatch
):
    a4c = installed
    backup = backed_up(cli_actor, "swap-fail", include_elasticsearch=False)
    change_everything(a4c)
    before_files = tree(a4c.data_dir)
    monkeypatch.setattr(
        restore_ops, "verify_restored", lambda *a, **k: ["index x holds 1 document (injected)"]
    )

    run = operations.run_restore(
        operations.request_restore(
            operations.RestoreRequest(backup.pk, scope="files"), cli_actor
        ).pk
    )

    assert run.status == RestoreRun.Status.ROLLED_BACK, run.error_message
    assert tree(a4c.data_dir) == before_files


def test_a_rollback_after_a_good_restore_brings_back_the_state_before_it(installed, cli_actor):
    a4c = installed
    backup = backed_up(cli_actor, "good")
    change_everything(a4c)
    before_es, before_files = a4c.state(), tree(a4c.data_dir)
    run = restored(backup, cli_actor)

    rollback = operations.request_rollback(run.pk, cli_actor)
    rollback = operations.run_restore(rollback.pk)

    assert rollback.status == RestoreRun.Status.SUCCEEDED, rollback.error_message
    assert rollback.rollback_of_id == run.pk
    assert a4c.state() == before_es
    assert tree(a4c.data_dir) == before_files


def test_a_second_restore_while_one_is_pending_is_refused_with_who_holds_the_lock(
    installed, cli_actor, web_actor
):
    backup = backed_up(cli_actor, "busy")
    first = operations.request_restore(operations.RestoreRequest(backup.pk), web_actor)

    with pytest.raises(Busy, match="restore of busy started by olivia"):
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor)
    with pytest.raises(Busy):
        operations.request_backup(operations.BackupRequest(name="during-restore"), cli_actor)

    assert (
        RestoreRun.objects.count() == 1
        and not Backup.objects.filter(name="during-restore").exists()
    )
    refused = AuditEvent.objects.filter(outcome="refused").count()
    assert refused == 2
    operations.cancel("restore", first.pk, web_actor)
    assert OperationLock.objects.get(pk=1).kind == ""


def test_waiting_for_the_lock_gives_up_when_the_time_is_up_and_is_refused_once(
    installed, cli_actor, web_actor
):
    backup = backed_up(cli_actor, "held")
    operations.request_restore(operations.RestoreRequest(backup.pk), web_actor)

    with pytest.raises(Busy, match="restore of held started by olivia"):
        operations.request_backup(operations.BackupRequest(name="patient"), cli_actor, wait=1.0)

    assert not Backup.objects.filter(name="patient").exists()
    assert AuditEvent.objects.filter(outcome="refused", action="backup.create").count() == 1


def test_waiting_for_the_lock_starts_the_backup_once_the_holder_ends(
    installed, cli_actor, web_actor
):
    backup = backed_up(cli_actor, "soon-free")
    first = operations.request_restore(operations.RestoreRequest(backup.pk), web_actor)

    def cancel_soon():
        try:
            threading.Event().wait(1.0)
            operations.cancel("restore", first.pk, web_actor)
        finally:
            connection.close()

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    waited = operations.request_backup(
        operations.BackupRequest(name="after-the-restore"), cli_actor, wait=30.0
    )
    canceller.join()

    assert waited.status == Backup.Status.PENDING
    assert OperationLock.objects.get(pk=1).run_id == waited.pk
    assert not AuditEvent.objects.filter(outcome="refused").exists()


def test_two_requests_at_the_same_instant_start_exactly_one_backup(a4c, cli_actor):
    results, barrier = [], threading.Barrier(4)

    def ask(i):
        barrier.wait()
        try:
            results.append(
                operations.request_backup(
                    operations.BackupRequest(name=f"race-{i}", include_elasticsearch=False),
                    cli_actor,
                )
            )
        except Busy as exc:
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]

    assert sum(isinstance(r, Backup) for r in results) == 1
    assert sum(isinstance(r, Busy) for r in results) == 3
    assert Backup.objects.count() == 1


def test_a_killed_workers_backup_is_failed_its_lock_freed_and_its_partial_manifest_removed(
    a4c, cli_actor, settings
):
    from django.utils import timezone

    backup = operations.request_backup(operations.BackupRequest(name="killed"), cli_actor)
    Backup.objects.filter(pk=backup.pk).update(
        status="running",
        started_at=timezone.now(),
        phase="files",
        heartbeat_at=timezone.now()
        - timezone.timedelta(seconds=settings.A4C_STALE_AFTER_SECONDS + 5),
    )
    partial = Path(settings.A4C_BACKUP_DIR) / "tmp"
    partial.mkdir(parents=True)

    notes = operations.recover_stale_runs()

    backup.refresh_from_db()
    assert backup.status == Backup.Status.FAILED
    assert "stopped answering during files" in backup.error_message
    assert OperationLock.objects.get(pk=1).kind == ""
    assert any("killed" in n for n in notes)
    assert AuditEvent.objects.filter(action="backup.recover").count() == 1


def test_cancelling_a_running_backup_stops_it_and_keeps_nothing(installed, cli_actor, settings):
    settings.A4C_HEARTBEAT_SECONDS = 0.05
    backup = operations.request_backup(operations.BackupRequest(name="to-cancel"), cli_actor)
    asked = []

    def progress(run):
        if not asked and run.phase == "files":
            # the run reads the request from its row: within half a second, or at the latest
            # at its next phase boundary, before anything is kept
            asked.append(operations.cancel("backup", backup.pk, cli_actor))

    backup = operations.run_backup(backup.pk, progress=progress)

    assert backup.status == Backup.Status.CANCELLED
    assert not Store(Path(settings.A4C_BACKUP_DIR)).manifests.exists("to-cancel")
    assert installed.cluster.snapshot(settings.A4C_ES_REPOSITORY, "to-cancel") is None
    assert OperationLock.objects.get(pk=1).kind == ""


def test_verify_names_a_flipped_byte_and_a_missing_snapshot(installed, cli_actor, settings):
    backup = backed_up(cli_actor, "to-damage")
    assert operations.verify_backup(backup.pk, cli_actor).ok

    blob = max(
        (Path(settings.A4C_BACKUP_DIR) / "blobs").rglob("*"),
        key=lambda p: p.stat().st_size if p.is_file() else 0,
    )
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    installed.cluster.delete_snapshot(backup.repository, backup.snapshot_name)

    report = operations.verify_backup(backup.pk, cli_actor)

    assert not report.ok
    assert any(blob.name[:12] in p and "corrupt" in p for p in report.problems), report.problems
    assert any("snapshot to-damage is missing" in p for p in report.problems), report.problems
    backup.refresh_from_db()
    assert backup.verify_ok is False
    plan = operations.plan_restore(operations.RestoreRequest(backup.pk, scope="files"))
    assert any("failed its last verification" in w for w in plan.warnings)


def test_deleting_a_backup_removes_its_snapshot_and_frees_blobs_no_other_backup_uses(
    installed, cli_actor, settings
):
    keep = backed_up(cli_actor, "keep")
    (installed.data_dir / "artifacts" / "only-in-second.bin").write_bytes(os.urandom(100_000))
    drop = backed_up(cli_actor, "drop")
    storage = Path(settings.A4C_BACKUP_DIR)
    size_before = sum(p.stat().st_size for p in (storage / "blobs").rglob("*") if p.is_file())

    operations.delete_backup(drop.pk, cli_actor)

    drop.refresh_from_db()
    assert drop.status == Backup.Status.DELETED
    assert installed.cluster.snapshot(drop.repository, "drop") is None
    size_after = sum(p.stat().st_size for p in (storage / "blobs").rglob("*") if p.is_file())
    assert size_before - size_after >= 100_000
    assert operations.verify_backup(keep.pk, cli_actor).ok
    assert AuditEvent.objects.filter(action="backup.delete", outcome="succeeded").count() == 1


def test_verifying_the_audit_chain_catches_an_edit_made_behind_the_applications_back(
    a4c, cli_actor
):
    operations.request_backup(
        operations.BackupRequest(name="audited", include_elasticsearch=False), cli_actor
    )
    assert audit.verify_chain().ok
    event = AuditEvent.objects.order_by("id").first()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE backups_auditevent SET actor = %s WHERE id = %s", ["mallory", event.id]
        )

    report = audit.verify_chain()

    assert not report.ok and report.event_id == event.id and "changed" in report.problem


def test_audit_events_cannot_be_edited_or_deleted_through_the_orm(a4c, cli_actor):
    operations.request_backup(
        operations.BackupRequest(name="append-only", include_elasticsearch=False), cli_actor
    )
    event = AuditEvent.objects.first()
    event.actor = "mallory"
    with pytest.raises(Exception, match="append-only"):
        event.save()
    with pytest.raises(Exception, match="append-only"):
        AuditEvent.objects.all().delete()
    with pytest.raises(Exception, match="append-only"):
        AuditEvent.objects.update(actor="mallory")


def test_a_repository_path_outside_path_repo_is_named_with_what_to_do(a4c, cli_actor, settings):
    settings.A4C_ES_REPOSITORY_PATH = "/nowhere/a4c"
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="no-repo"), cli_actor).pk
    )

    assert backup.status == Backup.Status.FAILED
    assert "/nowhere/a4c" in backup.error_message and "path.repo" in backup.error_message


def test_an_unknown_backup_is_not_found():
    with pytest.raises(NotFound, match="No backup 'ghost'"):
        operations.get_backup("ghost")


def test_a_restore_needs_the_typed_name_to_match(installed, cli_actor):
    backup = backed_up(cli_actor, "confirm-me", include_elasticsearch=False)
    with pytest.raises(InvalidInput, match="Type the backup's name"):
        operations.request_restore(
            operations.RestoreRequest(backup.pk), cli_actor, confirm="confirm-you"
        )


def test_cancelling_a_running_restore_stops_it_and_rolls_back(installed, cli_actor, settings):
    settings.A4C_HEARTBEAT_SECONDS = 0.05
    a4c = installed
    backup = backed_up(cli_actor, "restore-to-cancel")
    change_everything(a4c)
    before_es, before_files = a4c.state(), tree(a4c.data_dir)
    run = operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor)
    asked = []

    def progress(current):
        if not asked and current.phase == "elasticsearch":
            # the run reads the request from its row, at the latest at its next phase boundary
            asked.append(operations.cancel("restore", run.pk, cli_actor))

    run = operations.run_restore(run.pk, progress=progress)

    assert run.status == RestoreRun.Status.ROLLED_BACK and run.rolled_back
    assert run.error_message.startswith("Cancelled")
    assert a4c.state() == before_es
    assert tree(a4c.data_dir) == before_files
    assert AuditEvent.objects.filter(action="restore.cancel").count() == 1


def test_the_worker_follows_the_stored_plan_and_asks_only_elasticsearch_again(
    installed, cli_actor, monkeypatch
):
    backup = backed_up(cli_actor, "planned-once")
    run = operations.request_restore(
        operations.RestoreRequest(backup.pk), cli_actor, confirm=backup.name
    )
    shown = Plan.from_json(run.plan)
    assert shown.files is not None and shown.counts()["remove"] == 0
    # Between the plan shown and the worker: someone creates an index, and the file half of
    # the plan must not be walked again (the restore of the files walks the data dir itself).
    installed.cluster.client.indices.create(
        index=installed.index("late"), settings={"number_of_replicas": 0}
    )
    planned_files = []
    real = WorkingTree.plan_restore
    monkeypatch.setattr(
        WorkingTree,
        "plan_restore",
        lambda self, *a, **k: planned_files.append(a) or real(self, *a, **k),
    )

    run = operations.run_restore(run.pk)

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    followed = Plan.from_json(run.plan)
    assert installed.index("late") in followed.targets("remove")
    assert any("changed between the plan and the restore" in w for w in followed.warnings)
    assert followed.files == shown.files, "the file half is the one shown"
    assert len(planned_files) <= 1, "at most the verification walks the data dir again"
    assert not installed.cluster.indices(include=[installed.index("late")])
