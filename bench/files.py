"""File backup and restore against cp -a, side by side in each run.

One run, on a demo data dir already generated:

1. cp -a of the data dir to the same disk, tar -cf of it into one archive there, and the full
   backup into a fresh store (the order rotates between runs, so the page cache favours none);
2. a second backup of the unchanged data (previous = the full one): its time against the full
   backup's, and the bytes it stored (must be zero); and against `find -printf` of the same
   metadata, the floor of any change detection that does not read the files;
3. 1 % of the files rewritten (same size, new bytes), then a backup: its time against the
   full backup's and against "1 % of the full backup + the unchanged scan";
4. restore of the full backup into a new data dir, then cp -a of the copy back (alternating).

Every time includes a final sync(2): the backup syncs before it writes its manifest, so cp
and restore must pay for their writes too.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

from backups.storage.store import Store
from bench.common import cp_a, median, rm, say, tar_c, timed, timed_cpu

CACHES = ("work", "tmp", "upload")


def data_files(root: Path) -> list[str]:
    found = []
    for top, dirs, names in os.walk(root):
        if top == str(root):
            dirs[:] = [d for d in dirs if d not in CACHES]
        found.extend(
            os.path.join(top, n) for n in names if not os.path.islink(os.path.join(top, n))
        )
    return sorted(found)


def find_printf(root: Path) -> None:
    with open(os.devnull, "w") as sink:
        subprocess.run(
            ["find", str(root), "-printf", "%s %T@ %C@ %i %m %U %G %y %p\\n"],
            stdout=sink,
            check=True,
        )


def change_one_percent(files: list[str], rng: random.Random) -> int:
    """Rewrites the first bytes of 1 % of the files; returns the bytes those files hold."""
    chosen = rng.sample(files, max(1, len(files) // 100))
    total = 0
    for path in chosen:
        os.chmod(path, 0o644)  # git objects are read-only
        with open(path, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            f.write(os.urandom(min(16, size)))
        total += size
    return total


def run_files(data: Path, work: Path, runs: int, workers: int, cold: bool) -> dict:
    """Times and ratios for one data dir; every ratio is taken within one run, then medians."""
    files = data_files(data)
    rng = random.Random(7)
    rows: list[dict] = []
    for i in range(runs):
        copy, store_dir = work / "cp-copy", work / "store"
        store = Store(store_dir)
        row: dict = {"run": i}

        def do_cp(copy=copy):
            cp_a(data, copy)

        def do_full(store=store):
            return store.backup_tree("full", data, workers=workers)

        def do_tar(archive=work / "tree.tar"):
            tar_c(data, archive)

        # the three in turn, so that the page cache favours none of them
        steps = [("cp", do_cp), ("full", do_full), ("tar", do_tar)]
        for key, step in steps[i % 3 :] + steps[: i % 3]:
            row[key], row[f"{key}_cpu"], result = timed_cpu(step, cold=cold)
            if key == "full":
                full = result
        rm(work / "tree.tar")
        row["full_bytes"], row["files"] = full.bytes, full.files

        row["unchanged"], again = timed(
            lambda store=store: store.backup_tree(
                "unchanged", data, previous="full", workers=workers
            ),
            cold=cold,
        )
        row["unchanged_new_bytes"], row["unchanged_read"] = again.new_bytes, again.read
        # the floor of any change detection by metadata: a C walk that lstat()s every entry
        row["scan"], _ = timed(lambda: find_printf(data), cold=cold)

        row["changed_bytes"] = change_one_percent(files, rng)
        row["one_percent"], inc = timed(
            lambda store=store: store.backup_tree(
                "one-percent", data, previous="unchanged", workers=workers
            ),
            cold=cold,
        )
        row["one_percent_read"], row["one_percent_new_bytes"] = inc.read, inc.new_bytes

        restored, back = work / "restored", work / "cp-back"

        def do_restore(store=store, restored=restored):
            store.restore_tree("full", restored, workers=workers)

        def do_cp_back(copy=copy, back=back):
            cp_a(copy, back)

        if i % 2 == 0:
            row["restore"], row["restore_cpu"], _ = timed_cpu(do_restore, cold=cold)
            row["cp_back"], row["cp_back_cpu"], _ = timed_cpu(do_cp_back, cold=cold)
        else:
            row["cp_back"], row["cp_back_cpu"], _ = timed_cpu(do_cp_back, cold=cold)
            row["restore"], row["restore_cpu"], _ = timed_cpu(do_restore, cold=cold)

        for path in (copy, back, restored, store_dir):
            rm(path)
        row["full_vs_cp"] = row["full"] / row["cp"]
        row["full_vs_tar"] = row["full"] / row["tar"]
        row["unchanged_vs_full"] = row["unchanged"] / row["full"]
        row["unchanged_vs_scan"] = row["unchanged"] / row["scan"]
        row["one_percent_vs_full"] = row["one_percent"] / row["full"]
        predicted = 0.01 * row["full"] + row["unchanged"]
        row["one_percent_vs_predicted"] = row["one_percent"] / predicted
        row["restore_vs_cp"] = row["restore"] / row["cp_back"]
        say(
            f"  run {i + 1}/{runs}: cp {row['cp']:.2f}s tar {row['tar']:.2f}s "
            f"full {row['full']:.2f}s "
            f"unchanged {row['unchanged']:.2f}s 1% {row['one_percent']:.2f}s "
            f"restore {row['restore']:.2f}s cp back {row['cp_back']:.2f}s"
        )
        rows.append(row)
    keys = [k for k, v in rows[0].items() if isinstance(v, float)]
    summary = {k: median([r[k] for r in rows]) for k in keys}
    summary.update(
        files=rows[0]["files"],
        bytes=rows[0]["full_bytes"],
        unchanged_new_bytes=max(r["unchanged_new_bytes"] for r in rows),
        unchanged_read=max(r["unchanged_read"] for r in rows),
        one_percent_read=median([r["one_percent_read"] for r in rows]),
        runs=rows,
    )
    return summary
