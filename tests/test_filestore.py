"""Backup file storage against real files: back up, break, restore, undo, collect garbage."""

import errno
import hashlib
import json
import os
import stat
import threading
from pathlib import Path

import pytest

import backups.storage.backup
import backups.storage.pipeline
from backups.errors import Cancelled, ConfigError, DamagedBackup, InvalidInput, StorageError
from backups.storage import (
    DATA_DIR,
    CopyOptions,
    Store,
    WorkingTree,
    compare_tree_to_manifest,
    parse_bandwidth,
)
from backups.storage.pipeline import Throttle
from backups.storage.restore import tree_differences

BIG = os.urandom(2 * 1024 * 1024 + 123)  # above the 1 MiB buffer: streamed, not held
BAD_NAME = b"bad-\xff\xfe-name.png"  # not UTF-8
MTIME = 1_600_000_000_123_456_789


def make_tree(root: Path) -> Path:
    files = {
        "csar/foo/1.0/foo.zip": b"PK\x03\x04 the foo archive",
        "csar/foo/1.0/foo.yaml": b"tosca_definitions_version: alien_dsl_3_0_0\n",
        "plugins/orchestrator.jar": BIG,
        "artifacts/copy-one.bin": b"the same bytes twice",
        "images/copy-two.bin": b"the same bytes twice",
        "images/café ☃.png": b"unicode name",
        "git/secret.key": b"private",
        "work/cache.bin": b"a cache",
        "tmp/upload.part": b"a temp file",
        "upload/pending.zip": b"an upload",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / os.fsdecode(b"images/" + BAD_NAME)).write_bytes(b"bytes under a non-UTF-8 name")
    (root / "git/empty").mkdir()
    os.chmod(root / "git/secret.key", 0o600)
    os.chmod(root / "csar/foo/1.0/foo.zip", 0o755)
    os.symlink("/etc", root / "plugins/etc-link")
    os.symlink("foo/1.0", root / "csar/latest")
    os.chmod(root / "csar/foo/1.0", 0o555)  # a read-only dir must still be restored into
    for top, dirs, names in os.walk(root, topdown=False):
        for name in [*names, *dirs]:
            os.utime(os.path.join(top, name), ns=(MTIME, MTIME), follow_symlinks=False)
    return root


def snapshot(root: Path, skip=()) -> dict:
    """Everything a restore must bring back: type, mode, mtime, bytes or link target."""
    found = {}

    def visit(path: bytes, rel: bytes) -> None:
        for entry in os.scandir(path):
            child = rel + b"/" + entry.name if rel else entry.name
            if not rel and os.fsdecode(entry.name) in skip:
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                found[child] = ("link", os.readlink(entry.path), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                found[child] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
                visit(entry.path, child)
            else:
                data = Path(os.fsdecode(entry.path)).read_bytes()
                found[child] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, data)

    visit(os.fsencode(root), b"")
    return found


CACHES = ("work", "tmp", "upload")


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return make_tree(tmp_path / "a4c" / "data")


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "backups")


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Paths the backup opens in the data dir."""
    calls = []
    real = backups.storage.backup.open_source

    def watching(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(backups.storage.backup, "open_source", watching)
    return calls


def all_files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if not p.is_dir()] if path.exists() else []


def blob_of(store: Store, name: str, rel: str) -> Path:
    (entry,) = [e for e in store.manifests.entries(name) if e.path == rel]
    return Path(store.blob_path(entry.sha256))


def write_manifest(store: Store, name: str, entries: list[dict]) -> None:
    header = {"format": "a4c-backup-manifest", "version": 1, "name": name, "created": "x"}
    lines = [json.dumps(line) + "\n" for line in [header, *entries]]
    body = "".join(lines).encode()
    trailer = {"end": True, "entries": len(entries), "files": 0, "bytes": 0}
    trailer["sha256"] = hashlib.sha256(body).hexdigest()
    store.manifests.directory.mkdir(parents=True, exist_ok=True)
    store.manifests.path(name).write_bytes(body + (json.dumps(trailer) + "\n").encode())


# -- round trip --------------------------------------------------------------------------


def test_a_restored_tree_is_byte_for_byte_the_tree_that_was_backed_up(data_dir, store, tmp_path):
    before = snapshot(data_dir, skip=CACHES)
    summary = store.backup_tree("first", data_dir)
    target = tmp_path / "elsewhere" / "data"

    result = WorkingTree(store, target).restore("first")

    assert snapshot(target) == before
    assert result.old_tree is None  # nothing was there to keep
    assert compare_tree_to_manifest(store, "first", target)
    assert (summary.files, summary.symlinks) == (8, 2)
    assert (result.files, result.bytes) == (summary.files, summary.bytes)


def test_a_symlink_to_etc_is_kept_as_a_link_and_never_followed(data_dir, store, tmp_path):
    store.backup_tree("first", data_dir)
    entries = {e.path: e for e in store.manifests.entries("first")}

    assert entries["plugins/etc-link"].type == "symlink"
    assert entries["plugins/etc-link"].target == "/etc"
    assert not [path for path in entries if path.startswith("plugins/etc-link/")]
    WorkingTree(store, tmp_path / "restored").restore("first")
    assert os.readlink(tmp_path / "restored/plugins/etc-link") == "/etc"


def test_unicode_and_non_utf8_names_round_trip_through_the_manifest(data_dir, store, tmp_path):
    store.backup_tree("first", data_dir)
    paths = {os.fsencode(e.path) for e in store.manifests.entries("first")}

    assert b"images/" + BAD_NAME in paths
    assert "images/café ☃.png".encode() in paths
    WorkingTree(store, tmp_path / "restored").restore("first")
    bad = tmp_path / "restored" / os.fsdecode(b"images/" + BAD_NAME)
    assert bad.read_bytes() == b"bytes under a non-UTF-8 name"


def test_the_manifest_lists_entries_in_walk_order_with_a_header_and_a_trailer(data_dir, store):
    summary = store.backup_tree("first", data_dir)
    lines = store.manifests.path("first").read_bytes().splitlines()
    paths = [e.path for e in store.manifests.entries("first")]

    assert json.loads(lines[0])["format"] == "a4c-backup-manifest"
    assert json.loads(lines[-1]) == {
        "end": True,
        "entries": len(paths),
        "files": 8,
        "bytes": summary.bytes,
        "sha256": summary.manifest_sha256,
    }
    assert paths == sorted(paths, key=lambda p: [os.fsencode(c) for c in p.split("/")])
    assert "git/empty" in paths
    assert store.manifests.summary("first").files == 8


def test_cache_dirs_are_left_out_and_carried_over_by_a_restore(data_dir, store):
    store.backup_tree("first", data_dir)
    caches = {name: snapshot(data_dir / name) for name in CACHES}

    assert not [e for e in store.manifests.entries("first") if e.path.split("/")[0] in CACHES]
    (data_dir / "work/newer-cache.bin").write_bytes(b"written after the backup")
    caches["work"] = snapshot(data_dir / "work")
    result = WorkingTree(store, data_dir).restore("first")

    assert {name: snapshot(data_dir / name) for name in CACHES} == caches
    assert not (result.old_tree / "work").exists()


def test_identical_files_are_stored_once(data_dir, store):
    summary = store.backup_tree("first", data_dir)

    assert blob_of(store, "first", "artifacts/copy-one.bin") == blob_of(
        store, "first", "images/copy-two.bin"
    )
    assert summary.new_blobs == summary.files - 1 == len(all_files(store.blobs))


# -- change detection ------------------------------------------------------------------


def test_a_second_backup_of_unchanged_files_reads_nothing_and_stores_nothing(
    data_dir, store, opened
):
    store.backup_tree("first", data_dir)
    opened.clear()

    summary = store.backup_tree("second", data_dir, previous="first")

    assert (summary.read, summary.new_blobs, summary.new_bytes) == (0, 0, 0)
    assert summary.reused == summary.files == 8
    assert opened == []
    assert [e for e in store.manifests.entries("second")] == [
        e for e in store.manifests.entries("first")
    ]


def test_after_one_file_changes_only_that_file_is_read(data_dir, store, opened):
    store.backup_tree("first", data_dir)
    (data_dir / "csar/foo/1.0/foo.yaml").write_bytes(b"tosca_definitions_version: changed\n")
    opened.clear()

    summary = store.backup_tree("second", data_dir, previous="first")

    assert opened == [str(data_dir / "csar/foo/1.0/foo.yaml")]
    assert (summary.read, summary.reused, summary.new_blobs) == (1, 7, 1)
    assert summary.new_bytes == len(b"tosca_definitions_version: changed\n")


def test_a_missing_previous_backup_just_means_reading_everything(data_dir, store):
    summary = store.backup_tree("first", data_dir, previous="never-taken")

    assert summary.read == summary.files == 8


def test_progress_ends_with_every_counted_file_done(data_dir, store):
    seen = []
    store.backup_tree("first", data_dir, progress=seen.append)

    assert seen[-1].files_done == seen[-1].files_total == 8
    assert seen[-1].bytes_done == seen[-1].bytes_total > len(BIG)


def test_a_second_backup_estimates_its_totals_from_the_first_and_ends_exact(data_dir, store):
    store.backup_tree("first", data_dir)
    (data_dir / "artifacts" / "grown.bin").write_bytes(b"x" * 5000)
    seen = []

    store.backup_tree("second", data_dir, previous="first", progress=seen.append)

    assert (seen[0].files_total, seen[0].files_done) == (8, 0), "the first backup's count"
    assert all(p.files_done <= p.files_total and p.bytes_done <= p.bytes_total for p in seen)
    assert seen[-1].files_done == seen[-1].files_total == 9
    assert seen[-1].bytes_done == seen[-1].bytes_total


def test_a_file_that_vanishes_during_the_backup_is_skipped_with_a_warning(
    data_dir, store, monkeypatch
):
    real = backups.storage.backup.open_source

    def vanishing(path):
        if path.endswith("foo.yaml"):
            raise FileNotFoundError(errno.ENOENT, "gone", path)
        return real(path)

    monkeypatch.setattr(backups.storage.backup, "open_source", vanishing)
    summary = store.backup_tree("first", data_dir)

    assert summary.files == 7
    assert summary.warnings == ["csar/foo/1.0/foo.yaml vanished during the backup and was skipped"]
    assert "csar/foo/1.0/foo.yaml" not in {e.path for e in store.manifests.entries("first")}


# -- restore modes and undo --------------------------------------------------------------


def test_a_mirror_restore_removes_files_added_since_the_backup(data_dir, store):
    before = snapshot(data_dir, skip=CACHES)
    store.backup_tree("first", data_dir)
    (data_dir / "csar/added.zip").write_bytes(b"new since the backup")
    (data_dir / "git/secret.key").write_bytes(b"changed")

    plan = WorkingTree(store, data_dir).plan_restore("first")
    WorkingTree(store, data_dir).restore("first")

    assert (plan.added, plan.changed, plan.removed) == (0, 1, 1)
    assert plan.removed_paths == ["csar/added.zip"]
    assert plan.changed_paths == ["git/secret.key"]
    assert snapshot(data_dir, skip=CACHES) == before


def test_a_merge_restore_keeps_files_added_since_the_backup(data_dir, store):
    store.backup_tree("first", data_dir)
    (data_dir / "csar/added.zip").write_bytes(b"new since the backup")
    (data_dir / "git/secret.key").write_bytes(b"changed")
    (data_dir / "images/copy-two.bin").unlink()

    plan = WorkingTree(store, data_dir).plan_restore("first", mode="merge")
    result = WorkingTree(store, data_dir).restore("first", mode="merge")

    assert (plan.added, plan.changed, plan.removed) == (1, 1, 0)
    assert (data_dir / "csar/added.zip").read_bytes() == b"new since the backup"
    assert (data_dir / "git/secret.key").read_bytes() == b"private"
    assert (data_dir / "images/copy-two.bin").read_bytes() == b"the same bytes twice"
    assert result.files == 2  # the others were already right and stayed where they were


def test_undo_restore_brings_back_the_exact_old_tree(data_dir, store, tmp_path):
    store.backup_tree("first", data_dir)
    (data_dir / "csar/added.zip").write_bytes(b"new since the backup")
    (data_dir / "git/secret.key").write_bytes(b"changed")
    before = snapshot(data_dir)

    result = WorkingTree(store, data_dir).restore("first")
    assert snapshot(data_dir) != before
    WorkingTree(store, data_dir).undo(result.old_tree)

    assert snapshot(data_dir) == before
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]


def test_drop_old_tree_removes_the_kept_tree(data_dir, store):
    store.backup_tree("first", data_dir)
    result = WorkingTree(store, data_dir).restore("first")

    WorkingTree(store, data_dir).drop_old_tree(result.old_tree)

    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]


# -- damage --------------------------------------------------------------------------------


def test_a_corrupted_blob_is_named_by_verify_and_stops_a_restore_before_the_swap(data_dir, store):
    store.backup_tree("first", data_dir)
    blob = blob_of(store, "first", "git/secret.key")
    os.chmod(blob, 0o644)
    blob.write_bytes(b"Private")  # one byte flipped, same size
    (data_dir / "git/secret.key").write_bytes(b"changed")  # the restore needs the blob
    before = snapshot(data_dir)

    report = store.verify("first")
    with pytest.raises(DamagedBackup, match="git/secret.key is corrupt"):
        WorkingTree(store, data_dir).restore("first")

    assert not report.ok
    assert report.problems == [
        f"blob {blob.name[:12]}.. for git/secret.key is corrupt "
        f"(hash {hashlib.sha256(b'Private').hexdigest()[:12]}..)"
    ]
    assert snapshot(data_dir) == before
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]  # no staging left


def test_a_missing_blob_is_named_by_verify_and_stops_a_restore(data_dir, store):
    store.backup_tree("first", data_dir)
    blob_of(store, "first", "csar/foo/1.0/foo.zip").unlink()
    os.chmod(data_dir / "csar/foo/1.0", 0o755)
    (data_dir / "csar/foo/1.0/foo.zip").unlink()  # the restore needs the blob
    before = snapshot(data_dir)

    report = store.verify("first")
    with pytest.raises(DamagedBackup, match="csar/foo/1.0/foo.zip"):
        WorkingTree(store, data_dir).restore("first")

    assert len(report.problems) == 1
    assert report.problems[0].endswith("for csar/foo/1.0/foo.zip is missing")
    assert snapshot(data_dir) == before
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]


def test_a_truncated_manifest_is_refused_as_corrupt(data_dir, store, tmp_path):
    store.backup_tree("first", data_dir)
    path = store.manifests.path("first")
    path.write_bytes(path.read_bytes()[:-200])

    with pytest.raises(DamagedBackup, match="first.manifest is .*truncated"):
        list(store.manifests.entries("first"))
    assert not store.verify("first").ok
    with pytest.raises(DamagedBackup):
        WorkingTree(store, tmp_path / "restored").restore("first")
    assert not (tmp_path / "restored").exists()


def test_a_manifest_whose_hash_does_not_match_is_refused(data_dir, store):
    store.backup_tree("first", data_dir)
    path = store.manifests.path("first")
    path.write_bytes(path.read_bytes().replace(b'"mode":384', b'"mode":511'))

    with pytest.raises(DamagedBackup, match="hash does not match"):
        list(store.manifests.entries("first"))


def test_a_manifest_entry_pointing_outside_the_data_dir_is_refused_before_writing(
    data_dir, store, tmp_path
):
    store.backup_tree("first", data_dir)
    good = next(e for e in store.manifests.entries("first") if e.path == "git/secret.key")
    file = {"type": "file", "size": good.size, "mode": 0o644, "sha256": good.sha256}
    write_manifest(store, "evil", [{"path": "a.txt", **file}, {"path": "../etc/passwd", **file}])
    before = snapshot(tmp_path / "a4c")

    with pytest.raises(DamagedBackup, match="'../etc/passwd' .* points outside the data dir"):
        WorkingTree(store, data_dir).restore("evil")

    assert snapshot(tmp_path / "a4c") == before


def test_a_manifest_cannot_write_through_a_symlink_it_created(data_dir, store, tmp_path):
    store.backup_tree("first", data_dir)
    good = next(e for e in store.manifests.entries("first") if e.path == "git/secret.key")
    link = {"path": "link", "type": "symlink", "target": str(tmp_path / "victim")}
    file = {"path": "link/owned", "type": "file", "size": good.size, "sha256": good.sha256}
    (tmp_path / "victim").mkdir()
    write_manifest(store, "evil", [link, file])

    with pytest.raises(DamagedBackup, match="out of order"):
        WorkingTree(store, tmp_path / "restored").restore("evil")

    assert list((tmp_path / "victim").iterdir()) == []
    assert not (tmp_path / "restored").exists()


# -- garbage, cancelling, full disk, names -------------------------------------------------


def test_garbage_collection_frees_exactly_the_blobs_of_a_deleted_manifest(data_dir, store):
    store.backup_tree("first", data_dir)
    (data_dir / "git/only-in-second.txt").write_bytes(b"unique to the second backup")
    store.backup_tree("second", data_dir, previous="first")
    blobs_before = len(all_files(store.blobs))

    store.manifests.delete("second")
    gc = store.collect_garbage()

    assert (gc.blobs_removed, gc.bytes_freed) == (1, len(b"unique to the second backup"))
    assert gc.blobs_kept == blobs_before - 1
    assert store.verify("first").ok


def test_garbage_collection_with_keep_ignores_other_manifests(data_dir, store):
    store.backup_tree("first", data_dir)

    gc = store.collect_garbage(keep=[])

    assert gc.blobs_removed == 7 and gc.blobs_kept == 0


def test_cancelling_through_check_leaves_no_manifest_and_no_temp_files(data_dir, store):
    def check():
        if all_files(store.blobs):  # some blobs are written: stop now
            raise Cancelled("cancelled by the operator")

    with pytest.raises(Cancelled):
        store.backup_tree("first", data_dir, check=check)

    assert not store.manifests.exists("first")
    assert all_files(store.tmp) == []


def test_a_full_disk_raises_a_clear_storage_error_and_keeps_earlier_backups(
    data_dir, store, monkeypatch
):
    store.backup_tree("first", data_dir)
    (data_dir / "git/new.txt").write_bytes(b"needs a new blob")

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(backups.storage.backup, "write_all", full)
    with pytest.raises(StorageError) as failure:
        store.backup_tree("second", data_dir, previous="first")

    assert str(failure.value) == (
        f"No space left on device while writing to {store.blobs}: "
        "free space in the backup storage (A4C_BACKUP_DIR)"
    )
    assert not store.manifests.exists("second")
    assert all_files(store.tmp) == []
    assert store.verify("first").ok


@pytest.mark.parametrize("name", ["a/b", "nul\0", ".hidden", ""])
def test_it_refuses_a_backup_name_that_is_not_a_plain_file_name(store, data_dir, name):
    with pytest.raises(InvalidInput):
        store.backup_tree(name, data_dir)


def test_discard_partial_removes_the_temp_files_of_an_interrupted_backup(store):
    (store.tmp / "first").mkdir(parents=True)
    (store.tmp / "first" / "17").write_bytes(b"half a blob")

    store.discard_partial("first")

    assert all_files(store.tmp) == []


def test_tree_differences_names_what_differs_from_the_backup(data_dir, store):
    store.backup_tree("first", data_dir)
    os.chmod(data_dir / "git/secret.key", 0o644)

    (difference,) = tree_differences(store, "first", data_dir, frozenset(CACHES))

    assert difference.startswith("git/secret.key: is ")


def test_a_data_dir_that_is_a_mount_point_is_swapped_entry_by_entry_and_undone(
    data_dir, store, monkeypatch
):
    backed_up = snapshot(data_dir, skip=CACHES)
    store.backup_tree("first", data_dir)
    (data_dir / "csar/added.zip").write_bytes(b"new since the backup")
    before = snapshot(data_dir)
    monkeypatch.setattr(os.path, "ismount", lambda path: Path(path) == data_dir)

    result = WorkingTree(store, data_dir).restore("first")

    assert result.old_tree.parent == data_dir  # a mount point cannot be renamed away
    assert snapshot(data_dir, skip=(*CACHES, result.old_tree.name)) == backed_up
    WorkingTree(store, data_dir).undo(result.old_tree)
    assert snapshot(data_dir) == before


def test_it_refuses_a_backup_storage_inside_the_data_dir(data_dir):
    with pytest.raises(StorageError, match="set A4C_BACKUP_DIR to a directory outside it"):
        Store(data_dir / "backups").backup_tree("first", data_dir)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("0", 0), ("2048", 2048), ("500K", 500 << 10), ("50m", 50 << 20), ("1.5G", 3 << 29)],
)
def test_a_bandwidth_reads_as_bytes_per_second(text, expected):
    assert parse_bandwidth(text) == expected


@pytest.mark.parametrize("text", ["fast", "-5M", "10", "1.5X", "M"])
def test_a_bandwidth_that_is_not_one_says_how_to_write_it(text):
    with pytest.raises(ConfigError, match="A4C_FILE_BANDWIDTH .* like 500K, 50M or 1.5G"):
        parse_bandwidth(text)


def test_a_bandwidth_cap_sleeps_the_copying_thread_until_it_is_back_under_the_cap():
    now, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    throttle = Throttle(1 << 20, clock=lambda: now[0], sleep=sleep)
    throttle.take(3 << 20)  # three seconds' worth, at once

    assert now[0] == pytest.approx(3.0) and max(slept) <= 0.25
    now[0] += 10.0  # a slow stretch (a scan) earns one second of credit, not ten
    throttle.take(5 << 20)
    assert now[0] == pytest.approx(17.0)
    throttle.take(1 << 20)
    assert now[0] == pytest.approx(18.0)


def test_a_stopped_copy_stops_waiting_for_the_cap():
    stop = threading.Event()
    stop.set()
    throttle = Throttle(1024, clock=lambda: 0.0, sleep=lambda s: pytest.fail("it slept"))

    throttle.take(1 << 30, stop)

    assert throttle.moved == 1 << 30


def test_without_a_cap_copying_never_waits():
    throttle = Throttle(0, clock=lambda: 0.0, sleep=lambda s: pytest.fail("it slept"))
    throttle.take(10 << 30)

    assert throttle.moved == 10 << 30


def test_a_limited_backup_and_restore_count_the_bytes_they_really_moved(store, tmp_path):
    data = make_tree(tmp_path / "data")
    meters = []
    original = backups.storage.pipeline.Meter.__init__

    def keep(self, *args, **kwargs):
        original(self, *args, **kwargs)
        meters.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backups.storage.pipeline.Meter, "__init__", keep)
        store.backup_tree("first", data, bandwidth=1 << 30)
        store.backup_tree("again", data, previous="first", bandwidth=1 << 30)
        into = WorkingTree(store, tmp_path / "restored")  # a restore that writes every file
        into.restore("first", options=CopyOptions(bandwidth=1 << 30))

    first, again, restore = (meter.throttle for meter in meters)
    assert first.bandwidth == again.bandwidth == restore.bandwidth == 1 << 30
    backed_up = [
        p
        for p in data.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and p.relative_to(data).parts[0] not in ("work", "tmp", "upload")
    ]
    assert first.moved == sum(p.stat().st_size for p in backed_up) > len(BIG)
    assert again.moved == 0, "unchanged files are not read again"
    assert restore.moved == first.moved


# -- owners of a set from elsewhere ------------------------------------------------------


def owners(root: Path) -> dict[str, tuple[int, int, int]]:
    found = {".": os.lstat(root)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = os.lstat(path)
    return {rel: (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) for rel, st in found.items()}


def plant_owners(data_dir: Path) -> None:
    """What a planted manifest records: set-id bits, a stranger's files, anyone may write."""
    os.chmod(data_dir / "csar/foo/1.0/foo.zip", 0o6755)
    os.chown(data_dir / "git/secret.key", 1234, 1234)
    os.chmod(data_dir / "git/secret.key", 0o666)
    os.lchown(data_dir / "csar/latest", 1234, 1234)
    os.chown(data_dir / "images", 1234, 1234)
    os.chmod(data_dir / "images", 0o777)
    os.chown(data_dir, 1234, 1234)
    os.chmod(data_dir, 0o777)


def test_a_set_from_elsewhere_is_restored_into_a_new_data_dir_owned_as_its_parent(
    data_dir, store, tmp_path
):
    plant_owners(data_dir)
    store.backup_tree("planted", data_dir)
    parent = tmp_path / "new-machine"
    parent.mkdir()
    os.chown(parent, 4321, 4321)
    target = parent / "data"

    WorkingTree(store, target).restore("planted", owners=DATA_DIR)

    found = owners(target)
    assert {(uid, gid) for uid, gid, _ in found.values()} == {(4321, 4321)}
    assert found["."][2] == 0o775, "the recorded 0777 without its world-writable bit"
    assert found["csar/foo/1.0/foo.zip"][2] == 0o755
    assert found["git/secret.key"][2] == 0o664 and found["images"][2] == 0o775
    assert os.readlink(target / "csar/latest") == "foo/1.0"
    assert snapshot(target, skip=CACHES).keys() == snapshot(data_dir, skip=CACHES).keys()


def test_a_merge_of_a_set_from_elsewhere_keeps_the_data_dirs_owner_and_mode(data_dir, store):
    plant_owners(data_dir)
    store.backup_tree("planted", data_dir)
    # This machine's tree: its own owners, the two files changed since (the set's win).
    for path in [data_dir, *data_dir.rglob("*")]:
        os.lchown(path, 0, 0)
    os.chmod(data_dir, 0o750)
    os.chmod(data_dir / "images", 0o755)
    os.chmod(data_dir / "csar/foo/1.0/foo.zip", 0o644)
    os.chmod(data_dir / "git/secret.key", 0o600)
    (data_dir / "git/secret.key").write_bytes(b"changed here")

    WorkingTree(store, data_dir).restore("planted", mode="merge", owners=DATA_DIR)

    found = owners(data_dir)
    assert found["."] == (0, 0, 0o750)
    assert found["git/secret.key"] == (0, 0, 0o664)
    assert (data_dir / "git/secret.key").read_bytes() == b"private"
    assert found["images"] == (0, 0, 0o775)
    unsafe = stat.S_ISUID | stat.S_ISGID | stat.S_IWOTH
    links = {"csar/latest", "plugins/etc-link"}  # a link's own mode is always 0777
    assert not [rel for rel, (*_, mode) in found.items() if mode & unsafe and rel not in links]
    assert found["csar/latest"][:2] == (0, 0)


def test_owners_that_are_neither_recorded_nor_the_data_dirs_are_refused(data_dir, store):
    store.backup_tree("first", data_dir)

    with pytest.raises(InvalidInput, match="neither 'recorded' nor 'data dir'"):
        WorkingTree(store, data_dir).restore("first", owners="theirs")
