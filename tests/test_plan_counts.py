"""Issue 25, item 4: counts that add up. A restore's plan counts files and folders apart
("deletes 30,004 files and 302 folders"), and "unchanged" counts the files a backup holds,
so that it agrees with the backup's own file count. Real files, a real store."""

from __future__ import annotations

import os
from pathlib import Path

from backups.operations.plan import large_removal_warnings
from backups.storage import Store, WorkingTree
from backups.storage.results import FilePlan


def fill(root: Path, folders: int, per_folder: int, prefix: str = "f") -> None:
    for d in range(folders):
        folder = root / f"{prefix}-dir-{d:03}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_folder):
            (folder / f"{prefix}-{i:03}.bin").write_bytes(b"x" * (i + 1))


def test_a_plan_counts_files_and_folders_apart_and_unchanged_agrees_with_the_backup(tmp_path):
    data, store = tmp_path / "data", Store(tmp_path / "storage")
    fill(data, folders=4, per_folder=5)  # 20 files in 4 folders
    os.symlink("f-dir-000/f-000.bin", data / "a-link")
    summary = store.backup_tree("first", data)
    fill(data, folders=3, per_folder=10, prefix="new")  # 30 files in 3 folders since

    plan = WorkingTree(store, data).plan_restore("first")

    assert summary.files == 20
    assert (plan.unchanged, plan.unchanged_dirs, plan.unchanged_links) == (20, 4, 1)
    assert plan.unchanged == summary.files, "unchanged counts the files of the backup"
    assert (plan.removed, plan.removed_dirs, plan.added, plan.changed) == (30, 3, 0, 0)
    assert plan.removed_bytes == 3 * sum(range(1, 11)), "folders weigh nothing"
    assert plan.described("removed") == "30 files and 3 folders"
    assert plan.described("unchanged") == "20 files, 4 folders and 1 symbolic link"
    assert "new-dir-000/" in plan.removed_paths, "a folder's path says it is one"
    assert plan.removed_more == 0 and plan.listed == 33


def test_the_large_removal_warning_says_files_and_folders_with_separators():
    plan = FilePlan("mirror", removed=30_004, removed_dirs=302, removed_bytes=1 << 20)

    (warning,) = large_removal_warnings(plan)

    assert warning.startswith("This mirror restore deletes 30,004 files and 302 folders (")
    assert FilePlan("mirror", added=1, added_dirs=1).described("added") == "1 file and 1 folder"
