"""Files in memory are copied by the thread that finds them; only reads that would wait on the
device go to the file threads. Real files on this machine's ext4 disk and on a tmpfs, pages
evicted from the page cache with posix_fadvise(DONTNEED).

A read with RWF_NOWAIT that misses the cache starts the read from the device and answers
EAGAIN, unless that read has already ended (the virtual disk answers from its host's cache
in microseconds): so an evicted file may go either way, and the tests say only what holds
for both. Which files go to the threads is checked exactly with PageCache told which files
would wait."""

import errno
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from backups.storage import CopyOptions, Store, WorkingTree, compare_tree_to_manifest
from backups.storage.backup import BackupRun
from backups.storage.fileio import CHUNK, PageCache, buffer
from backups.storage.restore import FileRestore

SHM = Path("/dev/shm")


def evict(path) -> None:
    """Drops a file's pages from the page cache (written back first, so that they can go)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def make_tree(root: Path, files: int = 40) -> dict[str, bytes]:
    contents = {f"d{i % 4}/f{i:02}.bin": os.urandom(1000 + 97 * i) for i in range(files)}
    for rel, data in contents.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return contents


def read_back(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()
    }


def watch(monkeypatch, cls, name: str) -> list[tuple[str, bool, str]]:
    """Records (file, now, thread) for every call of a work method, and lets it run."""
    calls, real = [], getattr(cls, name)

    def watched(self, *args, now=False):
        result = real(self, *args, now=now)
        first = args[0] if isinstance(args[0], str) else args[0].path
        calls.append((first, now, threading.current_thread().name))
        return result

    monkeypatch.setattr(cls, name, watched)
    return calls


@pytest.fixture
def disk(tmp_path) -> Path:
    cache = PageCache(tmp_path)
    assert cache.nowait and not cache.memory, (
        f"{tmp_path} must be on a disk filesystem that answers RWF_NOWAIT (ext4 here): "
        "set TMPDIR to one"
    )
    return tmp_path


@pytest.fixture
def shm():
    assert SHM.is_dir(), "this test needs the tmpfs /dev/shm"
    path = Path(tempfile.mkdtemp(prefix="a4c-page-cache-", dir=SHM))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_read_is_taken_only_when_the_whole_file_is_in_memory(disk, monkeypatch):
    path = disk / "file"
    data = os.urandom(50_000)
    path.write_bytes(data)
    cache, view = PageCache(disk), buffer()
    assert cache.serves(len(data)) and not cache.serves(CHUNK)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.pread(fd, len(data), 0) == data  # in the page cache
        assert cache.read(fd, view, len(data)) == len(data)
        assert bytes(view[: len(data)]) == data
        evict(path)
        got = cache.read(fd, view, len(data))  # from the disk: None, or all of it if quick
        assert got is None or bytes(view[:got]) == data
        real = os.preadv
        monkeypatch.setattr(os, "preadv", lambda *args: real(*args) // 2)
        assert cache.read(fd, view, len(data)) is None  # a part is not taken as the file
        monkeypatch.setattr(os, "preadv", _fails(errno.EAGAIN))
        assert cache.read(fd, view, len(data)) is None and cache.nowait
        monkeypatch.setattr(os, "preadv", _fails(errno.EOPNOTSUPP))
        assert cache.read(fd, view, len(data)) is None
        assert not cache.nowait and not cache.serves(10)  # this filesystem cannot say
    finally:
        os.close(fd)


def _fails(code: int):
    def preadv(*_args):
        raise OSError(code, os.strerror(code))

    return preadv


def test_a_tmpfs_is_all_memory(shm):
    cache = PageCache(shm)
    assert cache.memory and cache.serves(10 * CHUNK)
    (shm / "file").write_bytes(b"x" * 5000)
    fd = os.open(shm / "file", os.O_RDONLY)
    try:
        assert cache.read(fd, buffer(), 5000) == 5000
    finally:
        os.close(fd)


def test_files_in_the_cache_are_copied_by_the_walk_and_evicted_ones_come_back_whole(
    disk, monkeypatch
):
    data_dir, store = disk / "data", Store(disk / "backups")
    contents = make_tree(data_dir)
    cold = set(sorted(contents)[::4])
    for rel in cold:
        evict(data_dir / rel)
    calls = watch(monkeypatch, BackupRun, "store_file")

    store.backup_tree("b1", data_dir, workers=2)

    assert {rel for rel, now, thread in calls if now and thread == "MainThread"} == set(contents)
    handed = {rel for rel, now, thread in calls if not now}
    assert handed <= cold  # a file in the cache never waits for a thread
    assert all(thread.startswith("a4c-filestore") for rel, now, thread in calls if not now)
    blobs = sorted(p for p in store.blobs.rglob("*") if p.is_file())
    for blob in blobs[::3]:
        evict(blob)
    restores = watch(monkeypatch, FileRestore, "_write_file")
    WorkingTree(store, disk / "restored").restore("b1", options=CopyOptions(workers=2))
    assert read_back(disk / "restored") == contents
    assert compare_tree_to_manifest(store, "b1", disk / "restored")
    assert {rel for rel, now, _ in restores if now} == set(contents)


def slow(monkeypatch, names: set[str]) -> None:
    """PageCache answers 'would wait' for these file names, as for a cold disk."""
    real = PageCache.read

    def read(self, fd, view, size):
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1] in names:
            return None
        return real(self, fd, view, size)

    monkeypatch.setattr(PageCache, "read", read)


def test_a_backup_hands_exactly_the_files_that_would_wait_to_the_workers(disk, monkeypatch):
    data_dir, store = disk / "data", Store(disk / "backups")
    contents = make_tree(data_dir)
    waiting = set(sorted(contents)[::4])
    slow(monkeypatch, {rel.rsplit("/", 1)[-1] for rel in waiting})
    calls = watch(monkeypatch, BackupRun, "store_file")

    store.backup_tree("b1", data_dir, workers=2)

    assert {rel for rel, now, thread in calls if now and thread == "MainThread"} == set(contents)
    handed = [(rel, thread) for rel, now, thread in calls if not now]
    assert {rel for rel, _ in handed} == waiting and len(handed) == len(waiting)
    assert all(thread.startswith("a4c-filestore") for _, thread in handed)
    WorkingTree(store, disk / "restored").restore("b1", options=CopyOptions(workers=2))
    assert read_back(disk / "restored") == contents


def test_a_restore_hands_exactly_the_blobs_that_would_wait_to_the_workers(disk, monkeypatch):
    data_dir, store = disk / "data", Store(disk / "backups")
    contents = make_tree(data_dir)
    store.backup_tree("b1", data_dir, workers=2)
    sha = {
        entry.path: entry.sha256 for entry in store.manifests.entries("b1") if entry.type == "file"
    }
    waiting = {sha[rel] for rel in sorted(contents)[::3]}
    slow(monkeypatch, waiting)
    calls = watch(monkeypatch, FileRestore, "_write_file")

    WorkingTree(store, disk / "restored").restore("b1", options=CopyOptions(workers=2))

    assert read_back(disk / "restored") == contents
    handed = [(sha[rel], thread) for rel, now, thread in calls if not now]
    assert {blob for blob, _ in handed} == waiting and len(handed) == len(waiting)
    assert all(thread.startswith("a4c-filestore") for _, thread in handed)
    assert {rel for rel, now, _ in calls if now} == set(contents)


def test_on_a_tmpfs_the_workers_stay_idle(shm, monkeypatch):
    data_dir, store = shm / "data", Store(shm / "backups")
    contents = make_tree(data_dir)
    (data_dir / "big.bin").write_bytes(os.urandom(2 * CHUNK + 5))  # streamed, still here
    contents["big.bin"] = (data_dir / "big.bin").read_bytes()
    backups = watch(monkeypatch, BackupRun, "store_file")
    restores = watch(monkeypatch, FileRestore, "_write_file")

    store.backup_tree("b1", data_dir, workers=2)
    WorkingTree(store, shm / "restored").restore("b1", options=CopyOptions(workers=2))

    assert read_back(shm / "restored") == contents
    assert len(backups) == len(restores) == len(contents)
    assert {thread for _, _, thread in backups + restores} == {"MainThread"}
