"""Backup storage that fills up or is damaged: clean failures, named damage, no harm done.

The full disk is real: a 6 MiB tmpfs mounted as the backup storage (the tests run as root;
without root the write is broken in the same place instead).
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from fault_support import leftovers, nothing_running, tree

import backups.storage.backup
from backups import operations
from backups.errors import BackupError
from backups.models import Backup, RestoreRun
from backups.storage import Store

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def small_storage(settings, tmp_path, monkeypatch):
    """A backup storage of 6 MiB: what does not fit fails with ENOSPC, as on a full disk."""
    mount = tmp_path / "small-storage"
    mount.mkdir()
    mounted = os.geteuid() == 0 and (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)]).returncode
        == 0
    )
    if not mounted:
        written = {"bytes": 0}
        real_write = backups.storage.backup.write_all

        def write_until_full(fd, data):
            written["bytes"] += len(data)
            if written["bytes"] > 6 << 20:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_write(fd, data)

        monkeypatch.setattr(backups.storage.backup, "write_all", write_until_full)
    settings.A4C_BACKUP_DIR = mount / "backups"
    yield Store(settings.A4C_BACKUP_DIR)
    if mounted:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_backup_storage_fails_the_backup_cleanly_and_keeps_earlier_ones_good(
    installed, small_storage, cli_actor, settings
):
    a4c = installed
    first = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="first"), cli_actor).pk
    )
    assert first.status == Backup.Status.SUCCEEDED, first.error_message
    files_at_first = tree(a4c.data_dir)
    (a4c.data_dir / "artifacts" / "too-big.bin").write_bytes(os.urandom(8 << 20))
    free_before = small_storage.free_bytes()

    second = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="second"), cli_actor).pk
    )

    assert second.status == Backup.Status.FAILED
    assert "No space left on device" in second.error_message
    assert "free space in the backup storage (A4C_BACKUP_DIR)" in second.error_message
    assert second.phase == "files", "the row says where it failed"
    assert small_storage.manifests.names() == ["first"], "no partial manifest is listed"
    assert not (small_storage.tmp / "second").exists()
    assert a4c.cluster.snapshot(settings.A4C_ES_REPOSITORY, "second") is None
    assert small_storage.free_bytes() >= free_before - (64 << 10), "its new blobs were freed"
    assert nothing_running()

    report = operations.verify_backup(first.pk, cli_actor)
    assert report.ok, report.problems
    (a4c.data_dir / "artifacts" / "too-big.bin").unlink()
    (a4c.data_dir / "artifacts" / "after.txt").write_text("made after the first backup")
    run = operations.run_restore(
        operations.request_restore(
            operations.RestoreRequest(first.pk, scope="files", safety_backup=False), cli_actor
        ).pk
    )
    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert tree(a4c.data_dir) == files_at_first


def _largest_blob(store: Store) -> Path:
    return max((p for p in store.blobs.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def flip_a_byte(store: Store, backup: Backup, cluster) -> str:
    blob = _largest_blob(store)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    return blob.name[:12]


def remove_a_blob(store: Store, backup: Backup, cluster) -> str:
    blob = _largest_blob(store)
    blob.unlink()
    return blob.name[:12]


def truncate_the_manifest(store: Store, backup: Backup, cluster) -> str:
    path = store.manifests.path(backup.name)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return "truncated"


def delete_the_snapshot(store: Store, backup: Backup, cluster) -> str:
    cluster.delete_snapshot(backup.repository, backup.snapshot_name)
    return f"snapshot {backup.snapshot_name} is missing"


DAMAGE = {
    "a flipped byte in a blob": (flip_a_byte, "corrupt"),
    "a missing blob": (remove_a_blob, "missing"),
    "a truncated manifest": (truncate_the_manifest, "manifest"),
    "a deleted snapshot": (delete_the_snapshot, "snapshot"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.replace(" ", "-") for d in DAMAGE])
def test_verify_names_the_damage_and_restore_refuses_before_touching_anything(
    installed, cli_actor, settings, damage
):
    a4c = installed
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="damaged"), cli_actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    client = a4c.cluster.client
    client.index(index=a4c.index("user"), id="late", document={"username": "late"}, refresh=True)
    a4c.cluster.client.indices.delete(index=a4c.index("plugin"))
    (a4c.data_dir / "artifacts" / "after.txt").write_text("made after the backup")
    break_it, word = DAMAGE[damage]
    store = Store(settings.A4C_BACKUP_DIR)
    named = break_it(store, backup, a4c.cluster)
    # A restore over the data dir reads only the blobs of the files that differ: the damaged
    # blob's files differ, so that this restore needs it.
    for entry in store.manifests.entries(backup.name) if "manifest" not in word else ():
        if entry.type == "file" and entry.sha256.startswith(named):
            (a4c.data_dir / entry.path).write_bytes(b"changed since the backup")
    es_before, files_before = a4c.state(), tree(a4c.data_dir)

    report = operations.verify_backup(backup.pk, cli_actor)

    assert not report.ok
    assert any(named in p and word in p for p in report.problems), report.problems

    try:
        run = operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor)
    except BackupError as refused:
        message = str(refused)
    else:
        run = operations.run_restore(run.pk)
        assert run.status == RestoreRun.Status.FAILED, run.error_message
        assert "Nothing had been changed yet" in run.error_message
        assert run.safety_backup is None, "refused before even taking a safety backup"
        message = run.error_message
    assert named in message and word in message, message
    assert a4c.state() == es_before
    assert tree(a4c.data_dir) == files_before
    assert leftovers(a4c.data_dir) == []
    assert nothing_running()
