"""Off-site archives: export a set, import it into a second storage and repository, restore it;
encryption with age, a wrong key, damaged and newer archives (real Elasticsearch, real files)."""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from fault_support import backed_up, lose_the_cluster_state, lose_the_console_database, tree
from pyrage import x25519

from backups import audit, operations
from backups.errors import DamagedBackup, InvalidInput
from backups.models import Backup, RestoreRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def keys(tmp_path):
    """An age key pair: the public key for the exporting machine, the key file for the other."""
    identity = x25519.Identity.generate()
    keyfile = tmp_path / "restorer.key"
    keyfile.write_text(f"# a restorer's key\n{identity}\n")
    return str(identity.to_public()), keyfile


@pytest.fixture
def second_machine(settings, tmp_path, es_path_repo, es_cluster):
    """Switches the console to a second storage and repository path; cleans up its imports."""

    switched = []

    def switch():
        settings.A4C_BACKUP_DIR = tmp_path / "storage-2"
        settings.A4C_ES_REPOSITORY_PATH = str(es_path_repo / f"{settings.A4C_ES_REPOSITORY}-2")
        lose_the_console_database()
        switched.append(True)

    yield switch
    if not switched:
        return
    for name, repo in es_cluster.client.snapshot.get_repository().items():
        if repo["settings"].get("location", "").startswith(settings.A4C_ES_REPOSITORY_PATH):
            es_cluster.delete_repository(name)
    for path in es_path_repo.glob(f"{Path(settings.A4C_ES_REPOSITORY_PATH).name}*"):
        shutil.rmtree(path, ignore_errors=True)


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def rewrite(path: Path, target: Path, change) -> None:
    """A copy of an unencrypted archive with one member's bytes changed (same size)."""
    with tarfile.open(path, "r:gz") as src, tarfile.open(target, "w:gz") as dst:
        for info in src:
            data = change(info.name, src.extractfile(info).read())
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))


def test_an_encrypted_archive_restores_on_a_second_storage_and_repository_byte_for_byte(
    small_a4c, cli_actor, settings, keys, second_machine, tmp_path
):
    public, keyfile = keys
    before_es, before_files = small_a4c.state(), tree(small_a4c.data_dir)
    backed_up(cli_actor, "acc1")
    backed_up(cli_actor, "acc2")  # the repository holds another snapshot the archive leaves out
    archive = tmp_path / "acc1.a4c"

    header = operations.export_backup("acc1", archive, cli_actor, recipients=[public])

    assert archive.read_bytes().startswith(b"age-encryption.org/v1\n")
    assert header.blobs == 2 and header.repository_files > 6
    second_machine()
    lose_the_cluster_state(small_a4c, settings)
    (small_a4c.data_dir / "images" / "logo.png").write_bytes(b"changed")

    backup = operations.import_archive(archive, cli_actor, identity=keyfile)

    assert backup.name == "acc1" and backup.imported_from.startswith("archive acc1.a4c")
    assert backup.repository == f"{settings.A4C_ES_REPOSITORY}-import-acc1"
    assert backup.repository_location == f"{settings.A4C_ES_REPOSITORY_PATH}-import-acc1"
    assert operations.verify_backup("acc1", cli_actor).ok
    snapshots = small_a4c.cluster.snapshots(backup.repository)
    assert [s.name for s in snapshots] == ["acc1"]  # acc2 stayed home
    run = operations.request_restore(
        operations.RestoreRequest(backup.pk, safety_backup=False), cli_actor, confirm="acc1"
    )
    run = operations.run_restore(run.pk)
    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert small_a4c.state() == before_es and tree(small_a4c.data_dir) == before_files
    assert audit.verify_chain().ok

    with pytest.raises(InvalidInput, match="is here already"):
        operations.import_archive(archive, cli_actor, identity=keyfile)


def test_a_wrong_key_or_no_key_is_refused_before_anything_is_written(
    small_a4c, cli_actor, settings, keys, second_machine, tmp_path
):
    public, _ = keys
    backed_up(cli_actor, "acc1")
    archive = tmp_path / "acc1.a4c"
    operations.export_backup("acc1", archive, cli_actor, recipients=[public])
    second_machine()
    wrong = tmp_path / "wrong.key"
    wrong.write_text(f"{x25519.Identity.generate()}\n")

    with pytest.raises(InvalidInput, match="does not open .*encrypted to other recipients"):
        operations.import_archive(archive, cli_actor, identity=wrong)
    with pytest.raises(InvalidInput, match="is encrypted: give the key"):
        operations.import_archive(archive, cli_actor)

    storage = Path(settings.A4C_BACKUP_DIR)
    assert not storage.exists() or not any(storage.rglob("*.*"))
    assert not Path(f"{settings.A4C_ES_REPOSITORY_PATH}-import-acc1").exists()
    assert not list(Path(settings.A4C_ES_REPOSITORY_PATH).parent.glob(".a4c-import-*"))
    assert Backup.objects.count() == 0


def test_damaged_newer_and_clashing_archives_are_refused_and_nothing_is_half_imported(
    small_a4c, cli_actor, settings, second_machine, tmp_path
):
    backed_up(cli_actor, "acc1")
    archive = tmp_path / "acc1.a4c"
    operations.export_backup("acc1", archive, cli_actor, recipients=[])
    assert "SHA256SUMS" in members(archive)
    truncated = tmp_path / "truncated.a4c"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    tampered = tmp_path / "tampered.a4c"
    blob = next(n for n in members(archive) if n.startswith("blobs/"))
    rewrite(archive, tampered, lambda n, d: bytes([d[0] ^ 1]) + d[1:] if n == blob else d)
    newer = tmp_path / "newer.a4c"
    rewrite(
        archive,
        newer,
        lambda n, d: (
            json.dumps({**json.loads(d), "version": 3}).encode() if n == "a4c-archive.json" else d
        ),
    )
    second_machine()

    with pytest.raises(DamagedBackup, match="is truncated or damaged.*nothing was imported"):
        operations.import_archive(truncated, cli_actor)
    with pytest.raises(DamagedBackup, match="does not match its SHA256SUMS"):
        operations.import_archive(tampered, cli_actor)
    with pytest.raises(InvalidInput, match="written by a newer a4c-backup \\(archive format 3"):
        operations.import_archive(newer, cli_actor)
    assert Backup.objects.count() == 0
    assert not Path(f"{settings.A4C_ES_REPOSITORY_PATH}-import-acc1").exists()
    storage = Path(settings.A4C_BACKUP_DIR)
    assert [p for p in storage.rglob("*") if p.is_file()] == []

    backed_up(cli_actor, "acc1")  # another set of the same name, here
    with pytest.raises(InvalidInput, match="two sets cannot share one name"):
        operations.import_archive(archive, cli_actor)


def test_export_and_import_stream_a_set_far_larger_than_their_memory(
    small_a4c, cli_actor, settings, keys, second_machine, tmp_path
):
    """256 MiB through tar, gzip and age in child processes whose peak memory is measured."""
    public, keyfile = keys
    size = 256 << 20
    with open(small_a4c.data_dir / "images" / "huge.bin", "wb") as f:
        for _ in range(size >> 20):
            f.write(os.urandom(1 << 20))
    backed_up(cli_actor, "big")
    archive = tmp_path / "big.a4c"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "A4C_BACKUP_DIR": str(settings.A4C_BACKUP_DIR),
        "A4C_ES_REPOSITORY": settings.A4C_ES_REPOSITORY,
        "A4C_ES_REPOSITORY_PATH": settings.A4C_ES_REPOSITORY_PATH,
        "A4C_EXPORT_RECIPIENTS": public,
    }

    def peak_of(*args) -> tuple[int, subprocess.CompletedProcess]:
        script = (
            "import resource, subprocess, sys;"
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
            "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
            "sys.exit(p.returncode)"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, sys.executable, "manage.py", *args],
            cwd=django_settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        return int(done.stderr.strip().splitlines()[-1]) * 1024, done

    export_peak, exported = peak_of("export", "big", "--to", str(archive))
    assert "exporting: 100%" in exported.stderr
    assert archive.stat().st_size > size
    second_machine()
    env["A4C_BACKUP_DIR"] = str(settings.A4C_BACKUP_DIR)
    env["A4C_ES_REPOSITORY_PATH"] = settings.A4C_ES_REPOSITORY_PATH
    import_peak, imported = peak_of("import", str(archive), "--identity", str(keyfile))

    assert "importing: 100%" in imported.stderr
    assert Backup.objects.get(name="big").imported_from.startswith("archive big.a4c")
    assert (Path(settings.A4C_BACKUP_DIR) / "manifests" / "big.manifest").is_file()
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"peak memory: export {export_peak >> 20} MiB, import {import_peak >> 20} MiB")
    assert export_peak < size // 2 and import_peak < size // 2, (export_peak, own_peak)
