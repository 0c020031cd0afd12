"""An archive is untrusted until its sums are checked: the limits an import holds it to.

A bomb on a small tmpfs is refused with the space it needs and the space free, before it
fills anything; an oversized header is refused from its tar header, not read; more members
than declared stop the import at once; a stopped import (SIGTERM) removes what it unpacked,
and what a killed one (SIGKILL) left is removed by the next import and by the recovery, while
a live import's staging is left alone. Real files, a real tmpfs, real child processes.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from fault_support import wait_for

from backups import operations
from backups.errors import DamagedBackup, StorageError
from backups.models import Backup
from backups.operations.record_schema import parse_record
from backups.storage import read_archive

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = "a4c-archive.json"


@pytest.fixture
def exported(a4c, cli_actor, tmp_path) -> Path:
    """An unencrypted archive of a small files-only set, then a second machine to import on:
    another storage, and a repository directory of its own under tmp_path."""
    (a4c.data_dir / "csar").mkdir()
    (a4c.data_dir / "csar" / "types.yml").write_text("tosca: 1.3\n")
    (a4c.data_dir / "plugins.bin").write_bytes(os.urandom(64 << 10))
    backup = operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="carried", include_elasticsearch=False), cli_actor
        ).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    archive = tmp_path / "carried.a4c"
    operations.export_backup("carried", archive, cli_actor, recipients=[])
    Backup.objects.all().delete()
    return archive


@pytest.fixture
def elsewhere(settings, tmp_path):
    """Points the console at a second storage and repository path; returns their places."""

    def to(root: Path) -> tuple[Path, Path]:
        settings.A4C_BACKUP_DIR = root / "storage"
        settings.A4C_ES_REPOSITORY_PATH = str(root / "repositories" / "a4c")
        (root / "repositories").mkdir(parents=True, exist_ok=True)
        return Path(settings.A4C_BACKUP_DIR), root / "repositories"

    return to


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 50 MiB tmpfs, unmounted at the end."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=50m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def rebuilt(archive: Path, target: Path, change) -> None:
    """A copy of an unencrypted archive, each member passed through ``change(info, data)``,
    which returns the members to write instead: [(info, data or a file object)]."""
    with tarfile.open(archive, "r:gz") as src, tarfile.open(target, "w:gz", compresslevel=1) as dst:
        for info in src:
            for new_info, data in change(info, src.extractfile(info).read()):
                if isinstance(data, bytes):
                    new_info.size = len(data)
                    data = io.BytesIO(data)
                dst.addfile(new_info, data)


class Zeros(io.RawIOBase):
    """``size`` zero bytes, read without holding them."""

    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def member(name: str, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    return info


def staged_leftovers(storage: Path, repositories: Path) -> list[str]:
    found = [p.name for p in (storage / "tmp").glob(".import-*")] if storage.exists() else []
    return sorted(found + [p.name for p in repositories.glob(".a4c-import-*")])


def nothing_imported(storage: Path, repositories: Path) -> None:
    assert Backup.objects.count() == 0
    assert staged_leftovers(storage, repositories) == []
    assert [p for p in storage.rglob("*") if p.is_file()] == []
    assert list(repositories.iterdir()) == []


def test_a_bomb_declaring_its_size_is_refused_for_space_before_anything_is_written(
    exported, elsewhere, small_tmpfs, cli_actor, tmp_path
):
    bomb = tmp_path / "bomb.a4c"
    big = 200 << 20

    def grow(info, data):
        if info.name == HEADER:
            header = json.loads(data)
            header.update(blobs=header["blobs"] + 1, bytes=header["bytes"] + big)
            return [(info, json.dumps(header).encode())]
        if info.name == "SHA256SUMS":
            return [(member(f"blobs/{'0' * 64}", big), Zeros(big)), (info, data)]
        return [(info, data)]

    rebuilt(exported, bomb, grow)
    assert bomb.stat().st_size < 2 << 20
    storage, repositories = elsewhere(small_tmpfs)

    with pytest.raises(StorageError) as refused:
        operations.import_archive(bomb, cli_actor)

    message = str(refused.value)
    assert "not enough space to import" in message and "needs 200." in message
    assert "free 49." in message or "free 50." in message, message
    assert "Nothing was imported" in message
    nothing_imported(storage, repositories)


def test_a_bomb_member_bigger_than_the_space_left_is_refused_before_it_is_written(
    exported, elsewhere, small_tmpfs, cli_actor, tmp_path
):
    """The header lies (it declares the real set); one blob claims 200 MiB of zeros."""
    bomb = tmp_path / "bomb.a4c"
    big = 200 << 20
    swapped = []

    def swell(info, data):
        if info.name.startswith("blobs/") and not swapped:
            swapped.append(info.name)
            return [(member(info.name, big), Zeros(big))]
        return [(info, data)]

    rebuilt(exported, bomb, swell)
    storage, repositories = elsewhere(small_tmpfs)

    with pytest.raises(StorageError, match=r"needs 200\.0 MiB .* which has free \d") as refused:
        operations.import_archive(bomb, cli_actor)

    assert "truncated or damaged" not in str(refused.value)
    nothing_imported(storage, repositories)


def test_an_oversized_header_is_refused_without_being_read(
    exported, elsewhere, cli_actor, tmp_path
):
    huge = tmp_path / "huge-header.a4c"
    size = 512 << 20
    with tarfile.open(huge, "w:gz", compresslevel=1) as dst:
        dst.addfile(member(HEADER, size), Zeros(size))
    storage, repositories = elsewhere(tmp_path / "second")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10

    with pytest.raises(DamagedBackup, match=r"a4c-archive.json of 512.0 MiB, more than the 64.0"):
        operations.import_archive(huge, cli_actor)

    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10) - peak_before
    assert grown < 64 << 20, f"the header was read: the peak grew by {grown >> 20} MiB"
    nothing_imported(storage, repositories)


def test_an_oversized_extended_tar_header_is_refused_without_being_read(
    exported, elsewhere, cli_actor, tmp_path
):
    """tarfile reads a pax header whole, before the member it describes: 256 MiB of one."""
    huge = tmp_path / "huge-pax.a4c"
    size = 256 << 20
    with tarfile.open(huge, "w:gz", compresslevel=1, format=tarfile.GNU_FORMAT) as dst:
        pax = member("././@PaxHeader", size)
        pax.type = tarfile.XHDTYPE
        dst.addfile(pax, Zeros(size))
        dst.addfile(member(HEADER, 2), io.BytesIO(b"{}"))
    storage, repositories = elsewhere(tmp_path / "second")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10

    with pytest.raises(DamagedBackup, match=r"extended tar header of 256.0 MiB, more than the"):
        operations.import_archive(huge, cli_actor)

    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10) - peak_before
    assert grown < 64 << 20, f"the header was read: the peak grew by {grown >> 20} MiB"
    nothing_imported(storage, repositories)


def test_more_members_than_declared_stop_the_import_at_the_first_one_over(
    exported, elsewhere, cli_actor, tmp_path
):
    crowded = tmp_path / "crowded.a4c"
    extra = [f"{n:064x}" for n in range(1000)]

    def crowd(info, data):
        if info.name == "SHA256SUMS":
            return [*[(member(f"blobs/{sha}"), b"") for sha in extra], (info, data)]
        return [(info, data)]

    rebuilt(exported, crowded, crowd)
    storage, repositories = elsewhere(tmp_path / "second")

    with pytest.raises(DamagedBackup, match=r"holds more blobs than the \d+ its header declares"):
        operations.import_archive(crowded, cli_actor)

    nothing_imported(storage, repositories)


def test_a_malformed_sums_file_is_damage_said_in_a_sentence(
    exported, elsewhere, cli_actor, tmp_path
):
    malformed = tmp_path / "malformed.a4c"
    rebuilt(
        exported,
        malformed,
        lambda info, data: [(info, b"not a sums line\n" if info.name == "SHA256SUMS" else data)],
    )
    storage, repositories = elsewhere(tmp_path / "second")

    with pytest.raises(DamagedBackup, match="is malformed at its line 1"):
        operations.import_archive(malformed, cli_actor)

    nothing_imported(storage, repositories)


def test_no_space_while_writing_is_said_as_space_not_as_damage(exported, small_tmpfs):
    """The space checked first was an estimate: something else fills the filesystem between
    the check and the writes (here the check of the record, which runs in between)."""
    staging = small_tmpfs / "tmp" / ".import-0123456789abcdef"
    repository_staging = small_tmpfs / "repositories" / ".a4c-import-0123456789abcdef"
    for directory in (staging.parent, repository_staging.parent):
        directory.mkdir()

    def fill_the_filesystem(header, record):
        fd = os.open(small_tmpfs / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            for chunk in (1 << 20, 4096):
                while True:
                    try:
                        os.write(fd, bytes(chunk))
                    except OSError:
                        break
        finally:
            os.close(fd)

    with pytest.raises(StorageError, match="no space left while importing") as refused:
        read_archive(
            exported,
            staging,
            repository_staging,
            identities=None,
            parse=parse_record,
            check=fill_the_filesystem,
        )

    assert "free 0 B now" in str(refused.value) and "truncated" not in str(refused.value)
    assert not staging.exists() and not repository_staging.exists()


# --- stopped and killed imports ------------------------------------------------------------

# The import in a child process, parked once its first blob is written (a stand-in for an
# import of many blobs that takes long enough to be stopped): it says so in a file, then
# waits for a signal. Everything else is the real `manage.py import`.
PARKED = """
import os, signal, sys
from pathlib import Path
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "a4c_backup.settings")
django.setup()
from backups.storage import archive_import
written = archive_import._write
def parked(source, target, place, path):
    result = written(source, target, place, path)
    if target.parent.name == "blobs":
        Path(sys.argv[2]).write_text(str(target))
        while True:
            signal.pause()
    return result
archive_import._write = parked
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "import", sys.argv[1]])
"""


@pytest.fixture
def parked_import(settings, tmp_path):
    """Starts `manage.py import ARCHIVE` in a child process and waits until it has written a
    blob into its staging dir; the child is killed at the end if the test did not end it."""
    started: list[subprocess.Popen] = []

    def start(archive: Path) -> subprocess.Popen:
        marker = tmp_path / f"parked-{len(started)}"
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
            "A4C_BACKUP_DIR": str(settings.A4C_BACKUP_DIR),
            "A4C_ES_REPOSITORY": settings.A4C_ES_REPOSITORY,
            "A4C_ES_REPOSITORY_PATH": settings.A4C_ES_REPOSITORY_PATH,
        }
        child = subprocess.Popen(
            [sys.executable, "-c", PARKED, str(archive), str(marker)],
            cwd=django_settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(child)
        wait_for(
            lambda: marker.exists() or child.poll() is not None,
            timeout=120,
            what="the import writing its first blob",
        )
        assert child.poll() is None, child.communicate()
        assert Path(marker.read_text()).is_file()
        return child

    yield start
    for child in started:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=60)


def test_a_stopped_import_removes_what_it_unpacked_and_says_so(
    exported, elsewhere, parked_import, tmp_path
):
    storage, repositories = elsewhere(tmp_path / "second")
    child = parked_import(exported)
    assert len(staged_leftovers(storage, repositories)) == 4  # two dirs, two locks

    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=60)

    assert child.returncode == 1, err
    assert "error: the import of carried.a4c was stopped (signal SIGTERM)" in err, err
    assert "nothing was imported" in err and "Traceback" not in err
    nothing_imported(storage, repositories)


def test_what_a_killed_import_left_is_removed_by_the_recovery_and_by_the_next_import(
    exported, elsewhere, parked_import, cli_actor, tmp_path
):
    storage, repositories = elsewhere(tmp_path / "second")
    killed = parked_import(exported)
    killed.kill()
    killed.communicate(timeout=60)
    assert len(staged_leftovers(storage, repositories)) == 4

    notes = operations.recover_stale_runs()

    assert sum("left over by a killed import, removed" in note for note in notes) == 2
    assert staged_leftovers(storage, repositories) == []

    # A live import is left alone: its locks say it runs.
    live = parked_import(exported)
    notes = operations.recover_stale_runs()
    assert not any("killed import" in note for note in notes)
    assert len(staged_leftovers(storage, repositories)) == 4
    live.kill()
    live.communicate(timeout=60)

    backup = operations.import_archive(exported, cli_actor)

    assert backup.name == "carried" and backup.imported_from.startswith("archive carried.a4c")
    assert staged_leftovers(storage, repositories) == []
    assert operations.verify_backup("carried", cli_actor).ok
