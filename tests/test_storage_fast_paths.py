"""The storage's short cuts keep its guarantees: blobs written in place are whole or absent,
the manifest is read once per restore, a canonical line reads as json would, and modes the
umask would mask, set-id bits and directory times come back exact."""

import errno
import json
import os
import stat
from pathlib import Path

import pytest

import backups.storage.backup
import backups.storage.manifest
from backups.errors import StorageError
from backups.storage import CopyOptions, Store, WorkingTree, compare_tree_to_manifest
from backups.storage.manifest import Entry, file_tail, path_prefix

MTIME = 1_600_000_000_123_456_789


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "backups")


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "data"
    files = {
        "a/one.txt": (b"one", 0o644),
        "a/deep/er/two.txt": (b"two" * 1000, 0o600),
        "b/everyone.txt": (b"umask would mask this", 0o666),
        "b/setuid-tool": (b"#!/bin/sh\n", 0o4755),
        "c/big.bin": (os.urandom((1 << 20) + 17), 0o640),  # streamed through a temp name
        "c/same-1.txt": (b"twice", 0o644),
        "c/same-2.txt": (b"twice", 0o644),
    }
    for rel, (data, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, mode)
    os.chmod(root / "a/deep", 0o555)
    for top, dirs, names in os.walk(root, topdown=False):
        for name in [*names, *dirs]:
            os.utime(os.path.join(top, name), ns=(MTIME, MTIME), follow_symlinks=False)
    return root


def listing(root: Path) -> dict:
    found = {}
    for top, dirs, names in os.walk(root):
        for name in [*dirs, *names]:
            path = os.path.join(top, name)
            st = os.lstat(path)
            data = Path(path).read_bytes() if stat.S_ISREG(st.st_mode) else None
            found[os.path.relpath(path, root)] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns, data)
    return found


def blobs(store: Store) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in store.blobs.rglob("*") if p.is_file()}


@pytest.mark.parametrize("workers", [0, 1, 4])
def test_a_restore_brings_back_modes_the_umask_masks_set_id_bits_and_dir_times(
    store, tree, tmp_path, workers
):
    before = listing(tree)
    store.backup_tree("first", tree, workers=workers)

    WorkingTree(store, tmp_path / "restored").restore("first", options=CopyOptions(workers=workers))

    assert listing(tmp_path / "restored") == before
    assert before["b/everyone.txt"][0] == 0o666 and before["b/setuid-tool"][0] == 0o4755
    assert compare_tree_to_manifest(store, "first", tmp_path / "restored")


def test_a_restore_reads_the_manifest_once(store, tree, tmp_path, monkeypatch):
    store.backup_tree("first", tree)
    reads = []
    real = backups.storage.manifest.Manifests.entries

    def counting(self, name):
        reads.append(name)
        return real(self, name)

    monkeypatch.setattr(backups.storage.manifest.Manifests, "entries", counting)
    WorkingTree(store, tmp_path / "restored").restore("first")

    assert reads == ["first"]


def test_a_blob_left_short_by_an_interrupted_backup_is_replaced_whole(store, tree):
    store.backup_tree("first", tree)
    (entry,) = [e for e in store.manifests.entries("first") if e.path == "a/deep/er/two.txt"]
    blob = Path(store.blob_path(entry.sha256))
    os.chmod(blob, 0o644)
    blob.write_bytes(b"twotwo")  # what a kill halfway through its write leaves

    summary = store.backup_tree("second", tree)

    assert blob.read_bytes() == b"two" * 1000
    assert summary.new_blobs == 1
    assert store.verify("second").ok


def test_a_write_that_fails_leaves_no_part_of_a_blob_under_its_name(store, tree, monkeypatch):
    def disk_full(fd, data):
        os.write(fd, bytes(data[:1]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(backups.storage.backup, "write_all", disk_full)
    with pytest.raises(StorageError, match="No space left on device"):
        store.backup_tree("first", tree, workers=0)

    assert blobs(store) == {}
    assert store.manifests.names() == []


def test_identical_files_are_stored_once(store, tree):
    summary = store.backup_tree("first", tree)

    assert summary.files == 7
    assert summary.new_blobs == 6
    assert len(blobs(store)) == 6


@pytest.mark.parametrize(
    "entry",
    [
        Entry(os.fsdecode(b'odd \\ "quoted"\xff/\xc3\xa9\x01'), "file", 5, 0o644, -3, 0, 7,
              "a" * 64, 12, 99),
        Entry("plain/file.txt", "file", 1, 0o600, MTIME, 1000, 1000, "b" * 64),
        Entry("a/dir", "dir", 0, 0o2755, MTIME, 0, 0),
        Entry("a/link", "symlink", 0, 0o777, MTIME, 0, 0, target='../x "y" \\ z'),
    ],
)  # fmt: skip
def test_a_canonical_manifest_line_reads_back_as_json_reads_it(entry):
    line = entry.line()

    assert Entry.from_line(line) == Entry.from_json(json.loads(line)) == entry


@pytest.mark.parametrize(
    "line",
    [
        b'{"path":"x","type":"file","size":01,"mode":1,"mtime_ns":1,"uid":1,"gid":1}\n',
        b'{"path":"x","type":"file","size":1,"mode":1,"mtime_ns":1,"uid":1,"gid":1}\n',
        b'{"path":"x","type":"symlink","size":0,"mode":1,"mtime_ns":1,"uid":1,"gid":1}\n',
        b'{"path": "x", "type": "dir"}\n',
    ],
)
def test_any_other_line_is_left_to_json_and_its_checks(line):
    assert Entry.from_line(line) is None


@pytest.mark.parametrize("rel", ["csar/a.zip", 'odd "name"\\é', "deep/er/x"])
def test_the_line_of_an_unchanged_file_is_built_as_entry_line_builds_it(tmp_path, rel):
    path = tmp_path / "f"
    path.write_bytes(b"data")
    os.chmod(path, 0o4751)
    st = os.lstat(path)
    entry = Entry.from_stat(rel, "file", st)
    entry.sha256 = "ab" * 32
    line = path_prefix(rel) + file_tail(st, entry.sha256)
    assert line == entry.line()
    assert Entry.from_line(line) == entry
