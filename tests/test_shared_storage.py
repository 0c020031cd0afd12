"""Several consoles sharing one backup storage: a run's lease keeps its blobs from the others'
collectors (backups/storage/leases.py), on real files and real processes.

Two consoles are two `manage.py` processes, each with its own database (its own var dir) and
the same A4C_BACKUP_DIR. Console A's backup is held at a pause point in the middle of its
files (its blobs written, its manifest not yet) while console B deletes a backup of its own and
collects: B keeps every blob, naming A's lease, and A's backup ends whole and verifies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fault_support import PROJECT, backed_up, lose_the_console_database
from pyrage import x25519

from backups import operations
from backups.demo import generator as demo
from backups.storage import Store

pytestmark = pytest.mark.django_db(transaction=True)

ORPHAN = "ab" + "0" * 62  # a blob no manifest names


def console_env(tmp_path: Path, name: str, settings, data_dir: Path, **extra: str) -> dict:
    """A console of its own (var dir, database, keys), on the test's shared storage."""
    var = tmp_path / name
    var.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("A4C_", "DATABASE_URL"))}
    return base | {
        "A4C_VAR_DIR": str(var),
        "A4C_DATA_DIR": str(data_dir),
        "A4C_BACKUP_DIR": str(settings.A4C_BACKUP_DIR),
        "A4C_ES_REPOSITORY": settings.A4C_ES_REPOSITORY,
        "A4C_ES_REPOSITORY_PATH": settings.A4C_ES_REPOSITORY_PATH,
        "A4C_INDEX_INCLUDE": ",".join(settings.A4C_INDEX_INCLUDE),
        "A4C_MAINTENANCE": "off",
        **extra,
    }


def manage(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PROJECT / "manage.py"), *argv],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def blobs(store: Store) -> set[str]:
    return {p.name for p in store.blobs.glob("*/*")}


def orphan_blob(store: Store) -> Path:
    path = store.blobs / ORPHAN[:2] / ORPHAN
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"nobody's")
    return path


def test_a_backup_in_flight_on_one_console_loses_nothing_to_another_consoles_collection(
    a4c, settings, tmp_path, pause_points
):
    demo.generate(a4c.data_dir, prefix=a4c.prefix, cluster=a4c.cluster, size=4 << 20, files=120)
    b_data = tmp_path / "b-data"
    (b_data / "csar").mkdir(parents=True)
    (b_data / "csar" / "b.yml").write_bytes(os.urandom(3000))
    console_a = console_env(tmp_path, "console-a", settings, a4c.data_dir, **pause_points.env)
    console_b = console_env(tmp_path, "console-b", settings, b_data)
    for env in (console_a, console_b):
        done = manage(env, "migrate", "--noinput", "-v", "0")
        assert done.returncode == 0, done.stderr
    done = manage(console_b, "backup", "--name", "b-own", "--files-only")
    assert done.returncode == 0, done.stderr
    store = Store(settings.A4C_BACKUP_DIR)

    pause_points.arm("backup-files", 0.5)
    a = subprocess.Popen(
        [
            sys.executable,
            str(PROJECT / "manage.py"),
            "backup",
            "--name",
            "a-flight",
            "--files-only",
        ],
        env=console_a,
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pause_points.reached("backup-files")
        held = [p.name for p in (store.root / "leases").iterdir()]
        assert len(held) == 1 and "backup-a-flight" in held[0], held
        assert not store.manifests.exists("a-flight")
        in_flight = blobs(store)
        assert len(in_flight) > 10, "A has written blobs no manifest names yet"

        deleted = manage(console_b, "delete", "b-own", "--yes")
        assert deleted.returncode == 0, deleted.stderr
        assert "deleted backup b-own" in deleted.stdout
        assert "Kept every blob: a run sharing the storage holds a lease: backup a-flight" in (
            deleted.stderr
        )
        assert blobs(store) == in_flight, "nothing was collected under A's lease"
        assert not store.manifests.exists("b-own")
    finally:
        pause_points.disarm("backup-files")
        out, err = a.communicate(timeout=300)
    assert a.returncode == 0, err
    assert not list((store.root / "leases").iterdir()), "A's lease ends with its run"
    report = store.verify("a-flight")
    assert report.files > 100 and not report.problems, report.problems
    verified = manage(console_a, "verify", "a-flight")
    assert verified.returncode == 0, verified.stderr

    # With no run in flight, the next collection frees what only b-own used.
    freed = store.collect_garbage()
    assert freed.blobs_removed >= 1 and not freed.held_by
    assert not store.verify("a-flight").problems


def test_a_live_lease_holds_every_collector_but_its_own(tmp_path):
    store = Store(tmp_path / "storage")
    orphan = orphan_blob(store)
    lease = store.leases.take("backup nightly (7)", 600)

    held = store.collect_garbage()
    assert orphan.exists() and held.blobs_removed == 0
    assert len(held.held_by) == 1 and held.held_by[0].startswith("backup nightly (7) on ")
    assert lease.holder in held.held_by[0]

    own = store.collect_garbage(own=lease)
    assert not orphan.exists() and own.blobs_removed == 1 and not own.held_by
    lease.release()
    assert not list((store.root / "leases").iterdir())


def test_an_expired_lease_is_ignored_and_said_to_be(tmp_path):
    store = Store(tmp_path / "storage")
    orphan = orphan_blob(store)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    store.leases.take("backup dead-console (3)", 600, now=long_ago)  # expired 50 minutes ago

    freed = store.collect_garbage()
    assert not orphan.exists() and freed.blobs_removed == 1
    assert not freed.held_by
    [note] = freed.notes()
    assert note.startswith("Ignored a lease: backup dead-console (3) on ")
    assert note.endswith("has expired.")

    # The same lease, read as it was before its expiry, holds the collection.
    orphan = orphan_blob(store)
    held = store.collect_garbage(now=long_ago + timedelta(minutes=5))
    assert orphan.exists() and held.held_by and held.blobs_removed == 0


def test_a_lease_of_a_process_gone_from_this_host_is_ignored(tmp_path):
    store = Store(tmp_path / "storage")
    orphan = orphan_blob(store)
    lease = store.leases.take("backup killed (4)", 600)
    body = json.loads(lease.path.read_text())
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    lease.path.write_text(json.dumps(body | {"pid": int(gone.stdout)}))

    freed = store.collect_garbage()
    assert not orphan.exists() and not freed.held_by
    assert freed.notes()[0].endswith("its process is gone.")


def test_malformed_lease_files_are_reported_and_ignored(tmp_path):
    store = Store(tmp_path / "storage")
    orphan = orphan_blob(store)
    leases = store.root / "leases"
    leases.mkdir()
    (leases / "half.json").write_text('{"format": "a4c-backup-lease"')
    (leases / "other.json").write_text(json.dumps({"format": "a4c-backup-lease", "path": "/"}))
    (leases / "Not A Lease.txt").write_text("hello")
    (leases / "link.json").symlink_to("/etc/passwd")
    (leases / "big.json").write_bytes(b" " * 10_000)
    live = store.leases.take("backup nightly (8)", 600)
    body = json.loads(live.path.read_text())
    (leases / "stolen.json").write_text(json.dumps(body))  # another lease's body: not its own
    live.release()

    freed = store.collect_garbage()
    assert not orphan.exists() and freed.blobs_removed == 1 and not freed.held_by
    notes = "\n".join(freed.notes())
    for expected in (
        "half.json: not JSON",
        "other.json: not a lease object",
        "Not A Lease.txt: not a lease file's name",
        "link.json: ",
        "big.json: larger than 4096 bytes",
        "stolen.json: it names holder",
    ):
        assert expected in notes, notes
    assert len(freed.ignored) == 6


def test_a_run_holds_its_lease_while_it_runs_and_removes_it_at_its_end(
    files, settings, cli_actor, pause_points
):
    """In one process: the lifecycle's lease, seen from a deletion's collection."""
    store = Store(settings.A4C_BACKUP_DIR)
    first = operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="first", include_elasticsearch=False), cli_actor
        ).pk
    )
    assert first.status == "succeeded", first.error_message
    assert not list((store.root / "leases").iterdir())
    orphan_blob(store)
    (store.root / "leases" / "junk.json").write_text("{")

    operations.delete_backup(first.pk, cli_actor)
    notes = operations.collection_notes(first.pk)
    assert notes == [
        "Ignored a lease: junk.json: not JSON (Expecting property name enclosed "
        "in double quotes: line 1 column 2 (char 1)) (not a lease)."
    ], notes
    assert not blobs(store), "the deletion's own lease did not hold its collection"


def test_an_import_holds_a_lease_while_it_unpacks_and_removes_it_at_its_end(
    small_a4c, cli_actor, settings, tmp_path, es_path_repo, es_cluster
):
    backed_up(cli_actor, "acc1")
    identity = x25519.Identity.generate()
    keyfile = tmp_path / "restorer.key"
    keyfile.write_text(f"{identity}\n")
    archive = tmp_path / "acc1.a4c"
    operations.export_backup("acc1", archive, cli_actor, recipients=[str(identity.to_public())])
    settings.A4C_BACKUP_DIR = tmp_path / "storage-2"
    settings.A4C_ES_REPOSITORY_PATH = str(es_path_repo / f"{settings.A4C_ES_REPOSITORY}-2")
    lose_the_console_database()
    leases = settings.A4C_BACKUP_DIR / "leases"
    seen = []

    def progress(_) -> None:
        seen.append(sorted(p.name for p in leases.iterdir()))

    try:
        backup = operations.import_archive(archive, cli_actor, identity=keyfile, progress=progress)
    finally:
        for name, repo in es_cluster.client.snapshot.get_repository().items():
            if repo["settings"].get("location", "").startswith(settings.A4C_ES_REPOSITORY_PATH):
                es_cluster.delete_repository(name)
        for path in es_path_repo.glob(f"{Path(settings.A4C_ES_REPOSITORY_PATH).name}*"):
            shutil.rmtree(path, ignore_errors=True)
    assert backup.name == "acc1"
    assert seen, "the import reported its progress"
    assert all(len(names) == 1 and "-import-acc1-a4c-" in names[0] for names in seen), seen
    assert not list(leases.iterdir()), "the import's lease ends with it"


def test_a_run_whose_lease_cannot_be_written_fails_before_it_writes_anything(
    files, settings, cli_actor
):
    store = Store(settings.A4C_BACKUP_DIR)
    store.root.mkdir(parents=True, exist_ok=True)
    (store.root / "leases").write_text("a file where the leases' directory belongs")

    backup = operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="unleased", include_elasticsearch=False), cli_actor
        ).pk
    )

    assert backup.status == "failed"
    assert f"{store.root / 'leases'} is not a directory: the backup storage keeps the leases" in (
        backup.error_message
    )
    assert "Traceback" not in backup.error_message
    assert not store.manifests.exists("unleased") and not blobs(store)
