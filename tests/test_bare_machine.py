"""Disaster recovery onto a machine where nothing exists yet (issue 24, item 1): no data dir,
not even its parent, a new console database and an empty cluster namespace. The restore of a
set synced from the storage, and of an imported archive, creates the data dir byte-exact; a data
dir that is a file is refused before anything is touched (real Elasticsearch, real files)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from fault_support import (
    ES_USER,
    PROJECT,
    backed_up,
    lose_the_cluster_state,
    lose_the_console_database,
    tree,
    wait_for,
)
from pyrage import x25519

from backups import operations, tasks
from backups.errors import InvalidInput
from backups.models import Backup, RestoreRun

pytestmark = pytest.mark.django_db(transaction=True)


def the_host_is_lost(a4c, settings, tmp_path) -> Path:
    """The database, the indices, the repository registration and the data dir are gone; the
    console now points at a data dir whose parent does not exist either. Returns it."""
    lose_the_console_database()
    lose_the_cluster_state(a4c, settings)
    shutil.rmtree(a4c.data_dir)
    new_data = tmp_path / "new-host" / "opt" / "a4c-data"
    settings.A4C_DATA_DIR = new_data
    return new_data


def restored(backup: Backup, cli_actor, **request) -> RestoreRun:
    run = operations.request_restore(
        operations.RestoreRequest(backup.pk, **request), cli_actor, confirm=backup.name
    )
    return operations.run_restore(run.pk)


def test_a_synced_set_restores_onto_a_machine_without_the_data_dir_or_its_parent(
    small_a4c, cli_actor, settings, tmp_path
):
    before_es, before_files = small_a4c.state(), tree(small_a4c.data_dir)
    root_mode = stat.S_IMODE(small_a4c.data_dir.stat().st_mode)
    backed_up(cli_actor, "acc1")
    new_data = the_host_is_lost(small_a4c, settings, tmp_path)
    operations.sync_catalog(cli_actor)
    backup = Backup.objects.get(name="acc1")

    plan = operations.plan_restore(operations.RestoreRequest(backup.pk))

    missing = [new_data, new_data.parent, new_data.parent.parent]
    assert plan.files.created_dirs == [str(p) for p in missing]
    assert plan.files.created_root == {"mode": root_mode, "uid": os.getuid(), "gid": os.getgid()}
    assert f"The data dir {new_data} does not exist: it will be created" in (
        plan.files.creates_data_dir
    )
    assert plan.files.entries("added") == len(before_files) and plan.files.removed == 0
    assert not new_data.parent.exists()  # a plan changes nothing

    run = restored(backup, cli_actor)  # with its safety backup

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert small_a4c.state() == before_es and tree(new_data) == before_files
    assert stat.S_IMODE(new_data.stat().st_mode) == root_mode
    safety = run.safety_backup
    assert safety.status == Backup.Status.SUCCEEDED and not safety.include_files
    assert any(f"The A4C data dir {new_data} did not exist" in w for w in safety.warnings)


def test_an_imported_set_restores_onto_a_machine_without_the_data_dir(
    small_a4c, cli_actor, settings, tmp_path, es_path_repo, es_cluster
):
    identity = x25519.Identity.generate()
    keyfile = tmp_path / "restorer.key"
    keyfile.write_text(f"{identity}\n")
    before_es, before_files = small_a4c.state(), tree(small_a4c.data_dir)
    backed_up(cli_actor, "acc1")
    archive = tmp_path / "acc1.a4c"
    operations.export_backup("acc1", archive, cli_actor, recipients=[str(identity.to_public())])
    new_data = the_host_is_lost(small_a4c, settings, tmp_path)
    settings.A4C_BACKUP_DIR = tmp_path / "new-host" / "storage"
    settings.A4C_ES_REPOSITORY_PATH = str(es_path_repo / f"{settings.A4C_ES_REPOSITORY}-2")
    try:
        backup = operations.import_archive(archive, cli_actor, identity=keyfile)

        run = restored(backup, cli_actor)

        assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
        assert small_a4c.state() == before_es and tree(new_data) == before_files
        assert not run.safety_backup.include_files

        # deleting the imported set removes its read-only repository and its directory
        # (issue 24, item 4); the restored data stays
        location = Path(backup.repository_location)
        assert location.is_dir() and es_cluster.repository_location(backup.repository)
        operations.delete_backup(backup.pk, cli_actor)

        assert Backup.objects.get(pk=backup.pk).status == Backup.Status.DELETED
        assert es_cluster.repository_location(backup.repository) is None
        assert not os.path.lexists(location)
        assert small_a4c.state() == before_es and tree(new_data) == before_files
    finally:
        for name, repo in es_cluster.client.snapshot.get_repository().items():
            if repo["settings"].get("location", "").startswith(settings.A4C_ES_REPOSITORY_PATH):
                es_cluster.delete_repository(name)
        for path in es_path_repo.glob(f"{Path(settings.A4C_ES_REPOSITORY_PATH).name}*"):
            shutil.rmtree(path, ignore_errors=True)


def test_a_data_dir_that_is_a_file_is_refused_naming_it_and_nothing_changes(
    small_a4c, cli_actor, settings, tmp_path
):
    backup = backed_up(cli_actor, "acc1")
    small_a4c.cluster.client.index(index=small_a4c.index("user"), id="new", document={"a": 1})
    small_a4c.cluster.client.indices.refresh(index=small_a4c.index("user"))
    es_before = small_a4c.state()
    not_a_dir = tmp_path / "a4c-data-file"
    not_a_dir.write_text("not a directory\n")
    settings.A4C_DATA_DIR = not_a_dir
    backups_before = list(Backup.objects.values_list("name", flat=True))

    with pytest.raises(InvalidInput, match=f"data dir {not_a_dir} exists but is not a directory"):
        operations.plan_restore(operations.RestoreRequest(backup.pk))
    under_a_file = not_a_dir / "a4c-data"
    settings.A4C_DATA_DIR = under_a_file
    with pytest.raises(InvalidInput, match=f"{not_a_dir} is not a directory"):
        operations.plan_restore(operations.RestoreRequest(backup.pk))

    # a plan confirmed while the data dir was a directory is refused at the restore's start
    settings.A4C_DATA_DIR = small_a4c.data_dir
    run = operations.request_restore(
        operations.RestoreRequest(backup.pk), cli_actor, confirm="acc1"
    )
    settings.A4C_DATA_DIR = not_a_dir
    run = operations.run_restore(run.pk)

    assert run.status == RestoreRun.Status.FAILED
    assert f"data dir {not_a_dir} exists but is not a directory" in run.error_message
    assert run.safety_backup is None
    assert list(Backup.objects.values_list("name", flat=True)) == backups_before
    assert not_a_dir.read_text() == "not a directory\n"
    assert small_a4c.state() == es_before


def test_a_failed_restore_onto_a_new_machine_rolls_back_to_no_data_dir(
    small_a4c, cli_actor, settings, tmp_path
):
    backup = backed_up(cli_actor, "acc1")
    lose_the_cluster_state(small_a4c, settings)
    new_data = tmp_path / "new-host" / "a4c-data"
    settings.A4C_DATA_DIR = new_data
    settings.A4C_POST_RESTORE_COMMAND = "false"  # fails after the files were swapped in

    run = restored(backup, cli_actor)

    assert run.status == RestoreRun.Status.ROLLED_BACK, run.error_message
    assert "post-restore command 'false' exited with 1" in run.error_message
    assert not os.path.lexists(new_data) and os.listdir(new_data.parent) == []
    assert small_a4c.cluster.indices(include=[f"{small_a4c.prefix}*"]) == {}


def test_a_restore_onto_a_new_machine_whose_worker_dies_leaves_no_data_dir_to_recovery(
    small_a4c, start_worker, worker_env, cli_actor, settings, tmp_path
):
    backup = backed_up(cli_actor, "acc1")
    new_data = tmp_path / "new-host" / "a4c-data"
    settings.A4C_DATA_DIR = new_data
    environment = {**worker_env, "A4C_DATA_DIR": str(new_data)}
    worker = start_worker(**environment, A4C_POST_RESTORE_COMMAND="sleep 60")
    run = operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor)
    tasks.run_restore.delay(run.pk)
    wait_for(
        lambda: RestoreRun.objects.filter(
            pk=run.pk, state__created_data_dir=str(new_data)
        ).exists(),
        what="the restore creating the data dir",
    )

    start_worker.kill(worker)
    later = timezone.now() + timedelta(seconds=settings.A4C_STALE_AFTER_SECONDS + 1)
    operations.recover_stale_runs(now=later)

    run.refresh_from_db()
    assert run.status == RestoreRun.Status.INTERRUPTED
    assert not os.path.lexists(new_data) and os.listdir(new_data.parent) == []


CHECK_AS_ANOTHER_USER = """\
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from backups.errors import InvalidInput
from backups.storage import Store, WorkingTree
try:
    WorkingTree(Store(Path(sys.argv[2])), Path(sys.argv[3])).check_writable()
except InvalidInput as exc:
    print(exc)
"""


@pytest.mark.parametrize("missing", [False, True], ids=["data-dir", "its-parent"])
def test_a_data_dir_this_user_cannot_write_is_refused_naming_it(missing):
    # Root writes everywhere: as root, the check runs as the Elasticsearch user, in a place
    # that user can reach (tmp_path's parents are root's alone).
    place = Path(tempfile.mkdtemp(prefix="a4c-unwritable-"))
    parent = place / "opt"
    try:
        place.chmod(0o755)
        parent.mkdir(mode=0o555)
        data_dir = parent / "a4c-data"
        if not missing:
            data_dir.mkdir(mode=0o555)
        command = [sys.executable, "-c", CHECK_AS_ANOTHER_USER]
        command += [str(PROJECT), str(place / "storage"), str(data_dir)]
        if ES_USER:
            command = [
                shutil.which("runuser") or "/usr/sbin/runuser",
                "-u",
                ES_USER,
                "--",
            ] + command
        said = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=place)

        assert said.returncode == 0, said.stderr
        if missing:
            assert f"A restore of the A4C data dir {data_dir} writes in {parent}" in said.stdout
        else:
            assert f"The A4C data dir {data_dir} is not writable by this user" in said.stdout
        assert os.path.lexists(data_dir) is not missing
    finally:
        if parent.exists():
            parent.chmod(0o755)
        shutil.rmtree(place)
