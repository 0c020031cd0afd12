"""File backup and restore side by side with `cp -a` and restic, on one medium.

One run, on a demo data dir already generated, every step a process measured alike
(bench/process.py: wall time with a syncfs of the medium, CPU user and system, peak RSS):

1. `cp -a` of the data dir beside it (the reference of a full backup);
2. a4c-backup: the full backup into a fresh store, a second backup of the unchanged tree
   (previous = the full one), the `find -printf` scan of the same metadata (the floor of any
   change detection that does not read the files), then the data dir is deleted and restored
   from the store into its place, checked (files and bytes), and the store deleted;
3. restic (Debian's package): the same three steps into a fresh repository;
4. `cp -a` of the data dir again (the reference of a restore: writing the same tree anew).

Steps 2 and 3 swap places every other run. Deleting the data dir before each restore keeps
what the medium holds at once to the data and one copy (two on a tmpfs is RAM: 10 GiB at
5 GiB of data); the restored tree, checked, is the data dir of the steps that follow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.common import drop_caches, median, rm, say
from bench.process import Measured, environment, measure, syscalls

CACHES = ("work", "tmp", "upload")
PASSWORD = "bench"  # a throwaway repository, deleted after each run


def tree_totals(root: Path) -> tuple[int, int]:
    """Files and bytes outside the cache dirs: what a restore must bring back."""
    files = total = 0
    for top, dirs, names in os.walk(root):
        if top == str(root):
            dirs[:] = [d for d in dirs if d not in CACHES]
        for name in names:
            st = os.lstat(os.path.join(top, name))
            if not os.path.islink(os.path.join(top, name)):
                files += 1
                total += st.st_size
    return files, total


def step(*args: str, workers: int) -> list[str]:
    return [sys.executable, "-m", "bench.step", *args, "--workers", str(workers)]


class Tools:
    """The commands of one run; paths under work/, the data dir at data."""

    def __init__(self, data: Path, work: Path, workers: int, cold: bool = False):
        self.data, self.work, self.workers, self.cold = data, work, workers, cold
        self.store = work / "store"
        self.repo = work / "restic-repo"
        self.copy = work / "cp-copy"
        self.restic_env = environment(
            RESTIC_REPOSITORY=str(self.repo),
            RESTIC_PASSWORD=PASSWORD,
            RESTIC_CACHE_DIR=str(work / "restic-cache"),
        )
        self.project = Path(__file__).resolve().parent.parent

    def cp(self) -> list[str]:
        return ["cp", "-a", str(self.data), str(self.copy)]

    def scan(self) -> list[str]:
        return ["find", str(self.data), "-printf", "%s %T@ %C@ %i %m %U %G %y %p\\n"]

    def ours_full(self) -> list[str]:
        return step("backup", str(self.data), str(self.store), "full", workers=self.workers)

    def ours_unchanged(self) -> list[str]:
        args = ("backup", str(self.data), str(self.store), "unchanged", "full")
        return step(*args, workers=self.workers)

    def ours_restore(self) -> list[str]:
        return step("restore", str(self.store), "full", str(self.data), workers=self.workers)

    def restic_backup(self) -> list[str]:
        excludes = [f"--exclude={self.data / name}" for name in CACHES]
        return ["restic", "backup", "-q", ".", *excludes]

    def restic_restore(self) -> list[str]:
        return ["restic", "restore", "-q", "latest", "--target", str(self.data)]

    def restic_init(self) -> None:
        subprocess.run(
            ["restic", "init", "-q"], env=self.restic_env, check=True, capture_output=True
        )

    def run(self, args: list[str], cwd: Path | None = None, env=None) -> Measured:
        if self.cold:
            drop_caches()
        return measure(args, self.work, cwd=cwd or self.project, env=env)


def record(row: dict, key: str, measured: Measured) -> None:
    row[key] = measured.seconds
    row[f"{key}_user"], row[f"{key}_sys"] = measured.user, measured.system
    row[f"{key}_rss_mb"] = measured.rss_mb


def check_restored(tools: Tools, expected: tuple[int, int], who: str) -> None:
    got = tree_totals(tools.data)
    if got != expected:
        raise RuntimeError(f"{who} restored {got} (files, bytes), expected {expected}")


def run_ours(tools: Tools, row: dict, expected: tuple[int, int]) -> None:
    full = tools.run(tools.ours_full())
    record(row, "full", full)
    row["files"], row["bytes"] = full.json()["files"], full.json()["bytes"]
    again = tools.run(tools.ours_unchanged())
    record(row, "unchanged", again)
    row["unchanged_new_bytes"] = again.json()["new_bytes"]
    record(row, "scan", tools.run(tools.scan()))
    rm(tools.data)
    record(row, "restore", tools.run(tools.ours_restore()))
    check_restored(tools, expected, "a4c-backup")
    rm(tools.store)


def run_restic(tools: Tools, row: dict, expected: tuple[int, int]) -> None:
    tools.restic_init()
    env = tools.restic_env
    record(row, "restic_full", tools.run(tools.restic_backup(), cwd=tools.data, env=env))
    record(row, "restic_unchanged", tools.run(tools.restic_backup(), cwd=tools.data, env=env))
    rm(tools.data)
    record(row, "restic_restore", tools.run(tools.restic_restore(), env=env))
    check_restored(tools, expected, "restic")
    rm(tools.repo)
    rm(tools.work / "restic-cache")


def run_files(
    data: Path, work: Path, runs: int, workers: int, restic: bool, cold: bool = False
) -> dict:
    """Times and ratios for one data dir; every ratio is taken within one run, then medians."""
    tools = Tools(data, work, workers, cold)
    expected = tree_totals(data)
    rows: list[dict] = []
    for i in range(runs):
        row: dict = {"run": i}
        record(row, "cp", tools.run(tools.cp()))
        rm(tools.copy)
        sides = [run_ours, run_restic] if restic else [run_ours]
        for side in sides if i % 2 == 0 else sides[::-1]:
            side(tools, row, expected)
        record(row, "cp_back", tools.run(tools.cp()))
        rm(tools.copy)
        row["full_vs_cp"] = row["full"] / row["cp"]
        row["unchanged_vs_scan"] = row["unchanged"] / row["scan"]
        row["restore_vs_cp"] = row["restore"] / row["cp_back"]
        line = (
            f"  run {i + 1}/{runs}: cp {row['cp']:.2f}s full {row['full']:.2f}s "
            f"unchanged {row['unchanged']:.2f}s (scan {row['scan']:.2f}s) "
            f"restore {row['restore']:.2f}s cp back {row['cp_back']:.2f}s"
        )
        if restic:
            row["full_vs_restic"] = row["full"] / row["restic_full"]
            row["unchanged_vs_restic"] = row["unchanged"] / row["restic_unchanged"]
            row["restore_vs_restic"] = row["restore"] / row["restic_restore"]
            line += (
                f"; restic full {row['restic_full']:.2f}s unchanged "
                f"{row['restic_unchanged']:.2f}s restore {row['restic_restore']:.2f}s"
            )
        say(line)
        rows.append(row)
    keys = [k for k, v in rows[0].items() if isinstance(v, float)]
    summary = {k: median([r[k] for r in rows]) for k in keys}
    summary.update(
        files=rows[0]["files"],
        bytes=rows[0]["bytes"],
        unchanged_new_bytes=max(r["unchanged_new_bytes"] for r in rows),
        runs=rows,
    )
    return summary


def count_syscalls(data: Path, work: Path, workers: int, restic: bool) -> dict:
    """System calls per file of each step, once (strace slows every call down)."""
    tools = Tools(data, work, workers)
    expected = tree_totals(data)
    files = expected[0]
    found: dict[str, dict] = {}

    def count(key: str, args: list[str], cwd: Path | None = None, env=None) -> None:
        calls = syscalls(args, cwd=cwd or tools.project, env=env)
        total = sum(calls.values())
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
        found[key] = {
            "total": total,
            "per_file": total / files,
            "top_per_file": {name: n / files for name, n in top},
        }
        say(f"  {key}: {total / files:.1f} system calls per file")

    count("cp -a", tools.cp())
    rm(tools.copy)
    count("a4c-backup full backup", tools.ours_full())
    rm(data)
    count("a4c-backup restore", tools.ours_restore())
    check_restored(tools, expected, "a4c-backup")
    rm(tools.store)
    if restic:
        tools.restic_init()
        env = tools.restic_env
        count("restic full backup", tools.restic_backup(), cwd=data, env=env)
        rm(data)
        count("restic restore", tools.restic_restore(), env=env)
        check_restored(tools, expected, "restic")
        rm(tools.repo)
        rm(work / "restic-cache")
    return found
