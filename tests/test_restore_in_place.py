"""A restore over a live data dir writes only what differs, on real files (issue 28, item 2).

Files that already hold the backup's bytes and attributes keep their inode and ctime; the
changed, added and removed ones are the only ones written; the result is the backup byte for
byte; undo (the rollback) brings back the tree as it was, from any point of the changes.
"""

import os
import stat
import time
from pathlib import Path

import pytest

import backups.storage.in_place
from backups.errors import DamagedBackup, StorageError
from backups.storage import CopyOptions, Store, WorkingTree

CACHES = ("work", "tmp", "upload")
MTIME = 1_600_000_000_123_456_789
FILES = 400  # 1 % of them is four


def make_tree(root: Path) -> Path:
    for i in range(FILES):
        path = root / f"csar/d{i // 50:02d}/f{i:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"file {i} ".encode() * (i % 7 + 1))
    (root / "git/empty").mkdir(parents=True)
    (root / "work").mkdir()
    (root / "work/cache.bin").write_bytes(b"a cache")
    os.symlink("d00/f000.bin", root / "csar/latest")
    os.chmod(root / "csar/d01/f050.bin", 0o600)
    for top, dirs, names in os.walk(root, topdown=False):
        for name in [*names, *dirs]:
            os.utime(os.path.join(top, name), ns=(MTIME, MTIME), follow_symlinks=False)
    return root


def identity(root: Path) -> dict:
    """Every entry's inode, ctime, mode, mtime and bytes (or link target)."""
    found = {}
    for top, dirs, names in os.walk(root):
        for name in [*names, *dirs]:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                body = Path(path).read_bytes()
            else:
                body = None
            found[os.path.relpath(path, root)] = (
                st.st_ino,
                st.st_ctime_ns,
                st.st_mode,
                st.st_mtime_ns,
                body,
            )
    return found


def contents(root: Path, skip=CACHES) -> dict:
    """What a restore must bring back: mode, mtime and bytes (or link target), no inodes."""
    return {
        rel: values[2:]
        for rel, values in identity(root).items()
        if rel.split("/")[0] not in skip and "undo-" not in rel
    }


def change_one_percent(root: Path) -> set[str]:
    """Changes 4 files, adds 4 and removes 4; returns their paths."""
    touched = set()
    for i in range(0, 4):
        rel = f"csar/d{i:02d}/f{i * 50 + 1:03d}.bin"
        (root / rel).write_bytes(b"changed since the backup")
        touched.add(rel)
    for i in range(4):
        rel = f"csar/d{i + 4:02d}/new-{i}.bin"
        (root / rel).write_bytes(b"added since the backup")
        touched.add(rel)
    for i in range(4):
        rel = f"csar/d{i:02d}/f{i * 50 + 2:03d}.bin"
        (root / rel).unlink()
        touched.add(rel)
    return touched


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return make_tree(tmp_path / "a4c" / "data")


@pytest.fixture
def store(tmp_path, data_dir) -> Store:
    store = Store(tmp_path / "backups")
    store.backup_tree("first", data_dir)
    return store


def test_a_restore_over_unchanged_data_touches_no_file(data_dir, store):
    before = identity(data_dir)

    result = WorkingTree(store, data_dir).restore("first", options=CopyOptions(workers=2))

    assert identity(data_dir) == before  # same inodes, same ctimes: nothing written or renamed
    assert (result.files, result.bytes) == (0, 0)
    WorkingTree(store, data_dir).drop_old_tree(result.old_tree)
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]


def test_a_restore_over_one_percent_changed_rewrites_only_those(data_dir, store):
    backed_up = contents(data_dir)
    touched = change_one_percent(data_dir)
    before = identity(data_dir)

    result = WorkingTree(store, data_dir).restore("first")

    after = identity(data_dir)
    assert contents(data_dir) == backed_up
    assert WorkingTree(store, data_dir).matches("first")
    rewritten = {rel for rel in after if rel in before and after[rel][:2] != before[rel][:2]}
    files_rewritten = {rel for rel in rewritten if after[rel][4] is not None}
    assert files_rewritten == {rel for rel in touched if rel in before and rel in after}
    assert set(after) - set(before) == {rel for rel in touched if rel not in before}
    assert set(before) - set(after) == {rel for rel in touched if "new-" in rel}
    changed_dirs = {rel for rel in rewritten if after[rel][4] is None}
    assert changed_dirs <= {f"csar/d{i:02d}" for i in range(8)}  # only the dirs they are in
    assert result.files == 8  # 4 changed, 4 removed ones restored; the added ones went


def test_rollback_puts_back_exactly_the_tree_before_the_restore(data_dir, store):
    change_one_percent(data_dir)
    os.chmod(data_dir / "csar/d05/f250.bin", 0o640)  # only its mode differs
    before = identity(data_dir)

    result = WorkingTree(store, data_dir).restore("first")
    assert identity(data_dir) != before
    WorkingTree(store, data_dir).undo(result.old_tree)

    after = identity(data_dir)
    # ctimes move with the renames back; inodes, modes, mtimes and bytes are the old ones
    assert {rel: v[:1] + v[2:] for rel, v in after.items()} == {
        rel: v[:1] + v[2:] for rel, v in before.items()
    }
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]


def test_a_failure_midway_through_the_changes_is_undone_from_the_journal(
    data_dir, store, monkeypatch
):
    change_one_percent(data_dir)
    before = contents(data_dir, skip=())
    renames = []
    real_rename = os.rename

    def failing_rename(src, dst):
        renames.append(dst)
        if len(renames) == 7:
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(backups.storage.in_place.os, "rename", failing_rename)

    with pytest.raises(StorageError, match="No space left on device while restoring"):
        WorkingTree(store, data_dir).restore("first")

    assert contents(data_dir, skip=()) == before
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]


def test_an_undo_after_a_crash_midway_replays_the_journal(data_dir, store, monkeypatch):
    change_one_percent(data_dir)
    before = contents(data_dir, skip=())
    staged = WorkingTree(store, data_dir).stage("first")
    renames = []
    real_rename = os.rename

    def dying_rename(src, dst):
        renames.append(dst)
        if len(renames) == 7:
            raise KeyboardInterrupt  # the process dies here: the swap's own undo never runs
        real_rename(src, dst)

    monkeypatch.setattr(backups.storage.in_place.os, "rename", dying_rename)
    monkeypatch.setattr(backups.storage.in_place, "undo_in_place", lambda *a: None)
    with pytest.raises(KeyboardInterrupt):
        staged.swap()
    monkeypatch.undo()
    assert contents(data_dir, skip=()) != before

    WorkingTree(store, data_dir).undo(staged.kept_tree)  # as the recovery does, later

    assert contents(data_dir, skip=()) == before
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]
    WorkingTree(store, data_dir).undo(staged.kept_tree)  # a second undo finds nothing to do


def test_a_file_changed_after_staging_is_caught_by_the_check_and_put_back(data_dir, store):
    backed_up_bytes = (data_dir / "csar/d03/f170.bin").read_bytes()
    change_one_percent(data_dir)
    staged = WorkingTree(store, data_dir).stage("first")
    (data_dir / "csar/d03/f170.bin").write_bytes(backed_up_bytes[::-1])  # same size, new bytes
    os.utime(data_dir / "csar/d03/f170.bin", ns=(MTIME, MTIME))  # and the backup's mtime
    before = contents(data_dir, skip=())

    with pytest.raises(StorageError, match="csar/d03/f170.bin: differs from the backup"):
        staged.swap()

    assert contents(data_dir, skip=()) == before
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]


def test_a_merge_over_live_data_adds_and_keeps(data_dir, store):
    touched = change_one_percent(data_dir)
    added = sorted(rel for rel in touched if "new-" in rel)

    result = WorkingTree(store, data_dir).restore("first", mode="merge")

    assert all((data_dir / rel).exists() for rel in added)
    assert result.files == 8
    assert WorkingTree(store, data_dir).differences("first") == [
        f"{rel}: not in the backup" for rel in added
    ]


AS_ANOTHER_USER = """
import os, stat, sys
from pathlib import Path
from backups.storage import Store, WorkingTree

root = Path(sys.argv[1])
data, store = root / "data", Store(root / "store")
(data / "ro" / "sub").mkdir(parents=True)
(data / "ro" / "f.txt").write_text("backed up")
(data / "ro" / "gone.txt").write_text("deleted after the backup")
(data / "ro" / "sub" / "g.txt").write_text("in a read-only dir")
os.chmod(data / "ro" / "sub", 0o555)
os.chmod(data / "ro", 0o555)
store.backup_tree("full", data)
os.chmod(data / "ro", 0o755)
(data / "ro" / "f.txt").write_text("changed since")
(data / "ro" / "new.txt").write_text("added since")
(data / "ro" / "gone.txt").unlink()
os.chmod(data / "ro", 0o555)


def tree():
    found = {}
    for top, dirs, files in os.walk(data):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            body = Path(path).read_text() if name in files else None
            found[os.path.relpath(path, data)] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns, body)
    return found


before = tree()
result = WorkingTree(store, data).restore("full")
assert WorkingTree(store, data).matches("full"), WorkingTree(store, data).differences("full")
assert stat.S_IMODE(os.lstat(data / "ro").st_mode) == 0o555
WorkingTree(store, data).undo(result.old_tree)
assert tree() == before
print("restored and undone as uid", os.geteuid())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root")
def test_a_user_who_is_not_root_restores_into_and_undoes_read_only_dirs(tmp_path):
    import shutil
    import subprocess
    import sys
    import tempfile

    from django.conf import settings

    root = Path(tempfile.mkdtemp(prefix="a4c-in-place-"))  # tmp_path is root's alone
    try:
        os.chown(root, 65534, 65534)
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        ran = subprocess.run(
            [*as_nobody, sys.executable, "-c", AS_ANOTHER_USER, str(root)],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(root)

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "restored and undone as uid 65534"


def test_memory_stays_flat_however_many_files_change(tmp_path):
    """The changes are noted in a file while staging, not held: a restore over a tree whose
    every file differs holds no more than one that changes a few."""
    import tracemalloc

    data = tmp_path / "many"
    paths = [data / f"d{i // 100:03d}" / f"a-longish-file-name-{i:06d}.bin" for i in range(5000)]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"backed up")
    store = Store(tmp_path / "many-store")
    store.backup_tree("full", data)

    def peak_of_a_restore_after_changing(changed: list[Path]) -> int:
        for path in changed:
            path.write_bytes(b"changed since!")
        tracemalloc.start()
        try:
            result = WorkingTree(store, data).restore("full", options=CopyOptions(workers=0))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result.files == len(changed)
        WorkingTree(store, data).drop_old_tree(result.old_tree)
        return peak

    few = peak_of_a_restore_after_changing(paths[:50])
    # Twice, the smaller kept: a buffer a thread allocates once (fileio.buffer) may first be
    # made in either run, depending on what ran before in this process.
    every = min(peak_of_a_restore_after_changing(paths) for _ in range(2))

    assert WorkingTree(store, data).matches("full")
    assert every < few + (1 << 20), f"{few} bytes at the peak for 50 changes, {every} for 5,000"


def _count_reads(monkeypatch) -> list[str]:
    """The live files hashed, by path: the restore's and the plan's reads of the data dir."""
    import backups.storage.restore

    read: list[str] = []
    real = backups.storage.in_place.hash_file

    def counted(path, *args, **kwargs):
        read.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(backups.storage.in_place, "hash_file", counted)
    monkeypatch.setattr(backups.storage.restore, "hash_file", counted)
    return read


def _same_size_change_behind_old_times(path: Path) -> None:
    """New bytes of the same length, the mtime set back as `touch -d` or tar would: only the
    change time (which no program sets back) tells."""
    st = os.lstat(path)
    body = path.read_bytes()
    path.write_bytes(bytes(b ^ 0xFF for b in body))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.lstat(path).st_mtime_ns == st.st_mtime_ns and path.read_bytes() != body


def test_a_restore_of_a_backup_made_here_reads_no_live_file_it_read(data_dir, store, monkeypatch):
    before = identity(data_dir)
    read = _count_reads(monkeypatch)
    tree = WorkingTree(store, data_dir)

    plan = tree.plan_restore("first", local=True)
    result = tree.restore("first", local=True)

    assert read == []  # every file is the one the backup hashed: same inode, ctime, mtime
    assert plan.entries("changed") == plan.entries("added") == plan.entries("removed") == 0
    assert identity(data_dir) == before and (result.files, result.bytes) == (0, 0)


def test_a_set_from_elsewhere_has_every_live_file_read(data_dir, store, monkeypatch):
    read = _count_reads(monkeypatch)

    WorkingTree(store, data_dir).restore("first", local=False)

    # its inodes and change times are another machine's: each file of the right size is hashed
    assert len(read) == FILES


def test_a_same_size_change_behind_an_old_mtime_is_caught_by_plan_and_restore(
    data_dir, store, monkeypatch
):
    backed_up = contents(data_dir)
    changed = data_dir / "csar/d03/f160.bin"
    _same_size_change_behind_old_times(changed)
    read = _count_reads(monkeypatch)
    tree = WorkingTree(store, data_dir)

    plan = tree.plan_restore("first", local=True)
    listed = [
        row
        for row in tree.file_changes("first", exclude_dirs=CACHES, mode="mirror", local=True)
        if row[0] != "unchanged"
    ]
    result = tree.restore("first", local=True)

    assert plan.entries("changed") == 1
    assert [(kind, path) for kind, path, _, _ in listed] == [("changed", "csar/d03/f160.bin")]
    # the plan, the list and the restore each read that file, and no other one
    assert sorted(set(read)) == [str(changed)]
    assert (result.files, result.bytes) == (1, changed.stat().st_size)
    assert contents(data_dir) == backed_up


# --- the manifest beside the walk, matched by bytes; the plan's findings kept for the staging


def _joined(store: Store, data_dir: Path, local: bool) -> tuple[list, list]:
    """The paths tree_join paired by their bytes, and those it parsed."""
    from backups.storage.join import tree_join, unparsed
    from backups.storage.walk import walk

    found = walk(data_dir, frozenset(CACHES))
    pairs = list(tree_join(store.manifests, "first", frozenset(CACHES), found, local=local))
    matched = [have[0] for want, have in pairs if unparsed(want)]
    parsed = [want.path for want, _ in pairs if not unparsed(want)]
    return matched, parsed


def test_a_line_that_says_what_the_lstat_says_is_paired_unread(data_dir, store):
    os.chmod(data_dir / "csar/d02/f100.bin", 0o640)  # its mode now differs from the line
    dirs = {os.path.relpath(top, data_dir) for top, _, _ in os.walk(data_dir)} - {".", "work"}

    matched, parsed = _joined(store, data_dir, local=True)
    matched_elsewhere, parsed_elsewhere = _joined(store, data_dir, local=False)

    # made here: every file and dir whose line is what its lstat would write, unparsed; the
    # changed file and the symlink (its target is not in an lstat) are parsed and compared
    assert parsed == ["csar/d02/f100.bin", "csar/latest"]
    assert len(matched) == FILES - 1 + len(dirs)
    # from elsewhere (its inodes and change times are another machine's): only dirs match
    assert sorted(matched_elsewhere) == sorted(d for d in dirs if d != ".")
    assert len(parsed_elsewhere) == FILES + 1


def test_a_line_matched_by_its_bytes_is_still_covered_by_the_manifests_hash(data_dir, store):
    path = store.manifests.path("first")
    body = path.read_bytes()
    line = next(x for x in body.splitlines() if b'"csar/d01/f060.bin"' in x)
    sha = line.split(b'"sha256":"')[1][:64]
    path.write_bytes(body.replace(sha, bytes(reversed(sha))))  # a blob that is not the file's
    before = identity(data_dir)

    with pytest.raises(DamagedBackup, match="its hash does not match its end line"):
        _joined(store, data_dir, local=True)
    with pytest.raises(DamagedBackup, match="its hash does not match its end line"):
        WorkingTree(store, data_dir).restore("first", local=True)
    assert identity(data_dir) == before
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]


def test_a_plan_for_a_restore_run_at_once_leaves_the_staging_only_what_differs(
    data_dir, store, monkeypatch
):
    from backups.storage import join
    from backups.storage import walk as walk_module

    backed_up = contents(data_dir)
    touched = change_one_percent(data_dir)
    tree = WorkingTree(store, data_dir)
    plan = tree.plan_restore("first", exclude_dirs=CACHES, local=True, at_once=True)
    walks = []
    real_walk = walk_module.walk
    for module in (backups.storage.in_place, join):  # the staging's walk, and the check's
        monkeypatch.setattr(module, "walk", lambda *a, **k: walks.append(a) or real_walk(*a, **k))

    result = tree.restore("first", options=CopyOptions(), local=True, findings=plan.findings)

    assert plan.findings and plan.listed == len(touched)
    assert len(walks) == 1  # the check after the changes; the staging walked nothing
    assert contents(data_dir) == backed_up
    assert result.files == 8
    # taken once: the same token again is a staging that walks the tree itself
    tree.restore("first", local=True, findings=plan.findings)
    assert len(walks) == 3


def test_a_change_between_the_plan_and_the_staging_is_caught_and_put_back(data_dir, store):
    tree = WorkingTree(store, data_dir)
    plan = tree.plan_restore("first", exclude_dirs=CACHES, local=True, at_once=True)
    # after the plan, which found this file unchanged: new bytes, its size and mtime kept
    _same_size_change_behind_old_times(data_dir / "csar/d03/f170.bin")
    before = contents(data_dir, skip=())

    with pytest.raises(StorageError, match="csar/d03/f170.bin: differs from the backup"):
        tree.restore("first", local=True, findings=plan.findings)

    assert contents(data_dir, skip=()) == before  # put back as it was, the change kept
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]
    tree.restore("first", local=True)  # planned again, the restore makes it right
    assert tree.differences("first", exclude_dirs=CACHES) == []


def test_findings_serve_only_their_own_restore_and_only_while_fresh(data_dir, store, monkeypatch):
    from backups.storage import findings

    tree = WorkingTree(store, data_dir)
    change_one_percent(data_dir)
    key = ("first", str(data_dir.resolve()), frozenset(CACHES), "mirror", "recorded", True)

    mirror = tree.plan_restore("first", exclude_dirs=CACHES, local=True, at_once=True)
    assert findings.take(mirror.findings, (*key[:3], "merge", *key[4:])) is None  # another one
    assert findings.take(mirror.findings, key) is None  # and taken once only
    stale = tree.plan_restore("first", exclude_dirs=CACHES, local=True, at_once=True)
    later = findings.coarse_now() + findings.FRESH_NS + 1
    monkeypatch.setattr(findings, "coarse_now", lambda: later)
    assert findings.take(stale.findings, key) is None
    monkeypatch.undo()
    kept = tree.plan_restore("first", exclude_dirs=CACHES, local=True, at_once=True)
    assert findings.take(kept.findings, key) is not None
    assert tree.plan_restore("first", exclude_dirs=CACHES, local=True).findings == ""
    monkeypatch.setattr(findings, "MAX_FINDINGS", 5)  # more differ than are kept
    assert tree.plan_restore("first", exclude_dirs=CACHES, local=True, at_once=True).findings == ""


@pytest.mark.parametrize(
    "foreign, says",
    [
        (
            lambda d: (d / "csar/d05/late.bin").write_bytes(b"written meanwhile"),
            "not in the backup",
        ),
        (lambda d: (d / "csar/d06/f300.bin").unlink(), "csar/d06/f300.bin: missing"),
        (lambda d: os.chmod(d / "csar/d07/f350.bin", 0o600), "f350.bin: differs from the backup"),
        (lambda d: os.chmod(d / "git/empty", 0o700), "git/empty: differs from the backup"),
    ],
    ids=["added", "removed", "chmod", "dir-chmod"],
)
def test_a_change_made_by_another_hand_during_the_restore_is_caught(data_dir, store, foreign, says):
    # the restore changes 1 % in csar/; another hand then changes what the restore leaves
    change_one_percent(data_dir)
    staged = WorkingTree(store, data_dir).stage("first", local=True)
    foreign(data_dir)
    before = contents(data_dir, skip=())

    with pytest.raises(StorageError, match=says):
        staged.swap()

    assert contents(data_dir, skip=()) == before


def test_a_file_the_plan_hashed_is_not_hashed_again_by_the_staging(data_dir, store, monkeypatch):
    copied = data_dir / "csar/d04/f200.bin"
    st, body = os.lstat(copied), copied.read_bytes()
    copied.unlink()
    copied.write_bytes(body)  # the same bytes and mtime in a new inode, as `cp -p` leaves them
    os.chmod(copied, stat.S_IMODE(st.st_mode))
    os.utime(copied, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.utime(copied.parent, ns=(MTIME, MTIME))
    before = identity(data_dir)
    read = _count_reads(monkeypatch)
    tree = WorkingTree(store, data_dir)

    plan = tree.plan_restore("first", exclude_dirs=CACHES, local=True, at_once=True)
    result = tree.restore("first", local=True, findings=plan.findings)

    assert read == [str(copied)]  # by the plan; the staging took its word, the check too
    assert plan.unchanged == FILES and plan.listed == 0
    assert identity(data_dir) == before and (result.files, result.bytes) == (0, 0)


def test_a_filesystem_whose_clock_is_behind_does_not_hide_a_change_after_the_plan(
    data_dir, store, monkeypatch
):
    from backups.storage import findings

    # this machine's clock 5 s ahead of the one stamping the data dir's change times (an NFS
    # server's): a change after the plan gets a change time older than the plan's start
    real = findings.coarse_now
    monkeypatch.setattr(findings, "coarse_now", lambda: real() + 5 * 10**9)
    tree = WorkingTree(store, data_dir)
    plan = tree.plan_restore("first", exclude_dirs=CACHES, local=True, at_once=True)
    _same_size_change_behind_old_times(data_dir / "csar/d03/f170.bin")
    assert (
        os.lstat(data_dir / "csar/d03/f170.bin").st_ctime_ns < findings._kept[plan.findings].since
    )
    time.sleep(0.05)  # the staging dir's change time is then newer than the change, by ticks

    with pytest.raises(StorageError, match="csar/d03/f170.bin: differs from the backup"):
        tree.restore("first", local=True, findings=plan.findings)
