"""The management commands as an operator types them, beside the inner loop and the peers
(issue 28, item 1).

One run, on a demo data dir already generated, every step a process measured alike
(bench/process.py: wall time with a syncfs of the medium, CPU user and system, peak RSS).
The scenarios:

1. a command's fixed cost: `manage.py backups --json` beside `python -c pass`;
2. a full backup: `manage.py backup --files-only` (its counting, its checks and its
   verification included) beside `cp -a` of the data dir (the reference copy, from which rsync
   and cp restore below), the inner loop (`python -m bench.step`), restic and borg (Debian's
   packages);
3. an unchanged backup: the same again over the unchanged tree, beside `find -printf` (the
   floor of a change detection), restic with the full one as parent and borg with its files
   cache;
4. restore over the unchanged live data dir: `manage.py restore NAME --scope files --yes
   --no-safety-backup`, the inner loop, and `rsync -a --delete` from the reference copy (the
   cache dirs left out of both);
5. the same over live data with 1 % of the files changed, 1 % added and 1 % deleted (the same
   change, seeded, before each tool), the changed files checked byte for byte afterwards;
6. restore into an empty place (the data dir deleted first): the command, the inner loop,
   `cp -a` from the reference copy, restic restore and borg extract.

A run goes tool by tool (run_commands), each tool's storage deleted before the next begins.
Every restore is checked (files and bytes outside the caches). restic encrypts (it cannot not);
borg runs unencrypted (`-e none`) with its default lz4 compression; rsync's quick check trusts
size and mtime; a4c-backup skips a live file only when it is the one its backup read (same
inode, change time, mtime and size) and hashes every other one whose size matches.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from bench.common import median, rm, say
from bench.files import CACHES, Tools, check_restored, record, tree_totals
from bench.process import environment

# (row label, our command's key, the inner loop's key, the reference's label and key, peers)
SCENARIOS = (
    ("a command's start (backups --json)", "cmd_start", None, ("python -c pass", "python"), ()),
    (
        "full backup",
        "cmd_full",
        "loop_full",
        ("cp -a", "cp"),
        (("restic", "restic_full"), ("borg", "borg_full")),
    ),
    (
        "unchanged backup",
        "cmd_unchanged",
        "loop_unchanged",
        ("find -printf", "scan"),
        (("restic", "restic_unchanged"), ("borg", "borg_unchanged")),
    ),
    (
        "restore over unchanged live data",
        "cmd_restore_unchanged",
        "loop_restore_unchanged",
        ("rsync -a --delete", "rsync_unchanged"),
        (),
    ),
    (
        "restore over live data, 1 % changed, 1 % added, 1 % deleted",
        "cmd_restore_1pct",
        "loop_restore_1pct",
        ("rsync -a --delete", "rsync_1pct"),
        (),
    ),
    (
        "restore into an empty place",
        "cmd_restore_empty",
        "loop_restore_empty",
        ("cp -a", "cp_back"),
        (("restic", "restic_restore"), ("borg", "borg_restore")),
    ),
)


class Commands(Tools):
    """Tools, plus manage.py on a scratch database, rsync and borg."""

    def __init__(self, data: Path, work: Path, workers: int, database: str):
        super().__init__(data, work, workers)
        self.reference = work / "reference"
        self.cmd_store = work / "cmd-store"
        self.borg_repo = work / "borg-repo"
        self.manage_env = environment(
            DATABASE_URL=database,
            A4C_DATA_DIR=str(data),
            A4C_BACKUP_DIR=str(self.cmd_store),
            A4C_FILE_WORKERS=str(workers),
            A4C_MAINTENANCE="off",
            A4C_LEGACY_CONFIG=str(work / "no-legacy-config.yml"),
            A4C_VAR_DIR=str(work / "var"),  # the console's keys, made on its first command
        )
        self.borg_env = environment(
            BORG_REPO=str(self.borg_repo),
            BORG_BASE_DIR=str(work / "borg-base"),
            BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
            BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
        )

    def manage(self, *args: str) -> list[str]:
        return [sys.executable, str(self.project / "manage.py"), *args]

    def timed_manage(self, row: dict, key: str, *args: str) -> None:
        record(row, key, self.run(self.manage(*args), env=self.manage_env))

    def rsync(self) -> list[str]:
        excludes = [f"--exclude=/{name}" for name in CACHES]
        return ["rsync", "-a", "--delete", *excludes, f"{self.reference}/", f"{self.data}/"]

    def top_level(self) -> list[str]:
        return sorted(name for name in os.listdir(self.data) if name not in CACHES)

    def borg_create(self, archive: str, names: list[str]) -> list[str]:
        return ["borg", "create", f"::{archive}", *names]


def change_one_percent(data: Path, seed: int) -> dict[str, bytes | None]:
    """Changes 1 % of the files (new bytes, same size), adds 1 % and deletes 1 %; the same
    change for the same seed and tree. Returns what each touched path should hold after a
    restore (None: absent)."""
    files = []
    for top, dirs, names in os.walk(data):
        if top == str(data):
            dirs[:] = sorted(d for d in dirs if d not in CACHES)
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(top, name)
            if not os.path.islink(path):
                files.append(path)
    pick = random.Random(seed)
    count = max(1, len(files) // 100)
    chosen = pick.sample(files, 2 * count)
    expected: dict[str, bytes | None] = {}
    for path in chosen[:count]:
        before = Path(path).read_bytes()
        expected[path] = before
        Path(path).write_bytes(bytes(b ^ 0x5A for b in before) or b"x")
    for path in chosen[count:]:
        expected[path] = Path(path).read_bytes()
        os.unlink(path)
    for i, path in enumerate(pick.sample(files, count)):
        added = f"{os.path.dirname(path)}/added-by-bench-{seed}-{i}.bin"
        if not os.path.lexists(added):
            Path(added).write_bytes(os.urandom(4096))
            expected[added] = None
    return expected


def check_change_undone(expected: dict[str, bytes | None], who: str) -> None:
    for path, content in expected.items():
        now = Path(path).read_bytes() if os.path.lexists(path) else None
        if now != content:
            raise RuntimeError(f"{who} left {path} different from the backup")


def profile_command(tools: Commands, out: Path, *args: str) -> None:
    """cProfile of one command as typed (its imports, plan, staging and check included): the
    top of its cumulative times, in out. Profiling slows Python about 1.5x: read the shares."""
    import pstats

    raw = out.with_suffix(".prof")
    command = [sys.executable, "-m", "cProfile", "-o", str(raw), *tools.manage(*args)[1:]]
    subprocess.run(command, env=tools.manage_env, check=True, capture_output=True)
    with open(out, "w") as text:
        text.write(f"# {' '.join(['manage.py', *args])}\n")
        pstats.Stats(str(raw), stream=text).sort_stats("cumulative").print_stats(60)
    raw.unlink()
    say(f"  profile of manage.py {args[0]} in {out}")


def run_commands(
    data: Path,
    work: Path,
    runs: int,
    workers: int,
    database: str,
    peers,
    profile_to: Path | None = None,
) -> dict:
    """Times of the command-level scenarios for one data dir; medians of the runs. With
    profile_to, the last run also profiles the restore over unchanged data, untimed.

    Each run goes tool by tool: the command, the inner loop, rsync and cp, restic, borg, each
    one's backups and restores, its storage deleted before the next one begins. So the tmpfs
    holds the data dir, the reference copy and one tool's storage at a time (15 GiB at 5 GiB:
    the six at once did not fit in this machine's 24 GiB)."""
    tools = Commands(data, work, workers, database)
    expected = tree_totals(data)
    rows: list[dict] = []
    for i in range(runs):
        row: dict = {"run": i}
        record(row, "cp", tools.run(["cp", "-a", str(data), str(tools.reference)]))
        record(row, "python", tools.run([sys.executable, "-c", "pass"]))
        tools.timed_manage(row, "cmd_start", "backups", "--json")
        record(row, "scan", tools.run(tools.scan()))
        profile = profile_to if i == runs - 1 else None
        _ours_as_typed(tools, row, expected, seed=i, profile_to=profile)
        _the_inner_loop(tools, row, expected, seed=i)
        _rsync_and_cp(tools, row, expected, seed=i)
        if "restic" in peers:
            _restic(tools, row, expected)
        if "borg" in peers:
            _borg(tools, row, expected)
        rm(tools.reference)
        say(
            f"  run {i + 1}/{runs}: start {row['cmd_start']:.2f}s full {row['cmd_full']:.2f}s "
            f"(loop {row['loop_full']:.2f}s, cp {row['cp']:.2f}s) unchanged "
            f"{row['cmd_unchanged']:.2f}s (scan {row['scan']:.2f}s) restore over unchanged "
            f"{row['cmd_restore_unchanged']:.2f}s (rsync {row['rsync_unchanged']:.2f}s) over 1 % "
            f"{row['cmd_restore_1pct']:.2f}s (rsync {row['rsync_1pct']:.2f}s) into empty "
            f"{row['cmd_restore_empty']:.2f}s (cp {row['cp_back']:.2f}s)"
        )
        rows.append(row)
    keys = [k for k, v in rows[0].items() if isinstance(v, float)]
    summary = {k: median([r[k] for r in rows]) for k in keys}
    for _, ours, _, (_, ref), peer_keys in SCENARIOS:
        summary[f"{ours}_vs_ref"] = median([r[ours] / r[ref] for r in rows])
        for _, key in peer_keys:
            if key in rows[0]:
                summary[f"{ours}_vs_{key}"] = median([r[ours] / r[key] for r in rows])
    summary.update(files=expected[0], bytes=expected[1], runs=rows)
    return summary


def _ours_as_typed(tools: Commands, row: dict, expected, seed: int, profile_to) -> None:
    # one database for every size of the invocation: the names carry the data dir's
    label = tools.data.name.lower()  # names are lowercase, as Elasticsearch wants them
    full, again = f"full-{label}-{seed}", f"again-{label}-{seed}"
    tools.timed_manage(row, "cmd_full", "backup", "--files-only", "--name", full, "--json")
    tools.timed_manage(row, "cmd_unchanged", "backup", "--files-only", "--name", again)
    restore = ("restore", full, "--scope", "files", "--yes", "--no-safety-backup")
    tools.timed_manage(row, "cmd_restore_unchanged", *restore)
    check_restored(tools, expected, "manage.py restore over unchanged data")
    if profile_to is not None:  # after the timed one: not in the figures
        profile_command(tools, profile_to, *restore)
        check_restored(tools, expected, "the profiled restore over unchanged data")
    change = change_one_percent(tools.data, seed=seed)
    tools.timed_manage(row, "cmd_restore_1pct", *restore)
    check_restored(tools, expected, "manage.py restore over 1 % changed")
    check_change_undone(change, "manage.py restore")
    rm(tools.data)
    tools.timed_manage(row, "cmd_restore_empty", *restore)
    check_restored(tools, expected, "manage.py restore into an empty place")
    rm(tools.cmd_store)


def _the_inner_loop(tools: Commands, row: dict, expected, seed: int) -> None:
    record(row, "loop_full", tools.run(tools.ours_full()))
    record(row, "loop_unchanged", tools.run(tools.ours_unchanged()))
    loop = tools.ours_restore()
    local = [*loop, "--local"]  # made here, as the command knows its own backups are
    record(row, "loop_restore_unchanged", tools.run(local))
    check_restored(tools, expected, "the inner loop's restore over unchanged data")
    change = change_one_percent(tools.data, seed=seed)
    record(row, "loop_restore_1pct", tools.run(local))
    check_change_undone(change, "the inner loop's restore")
    rm(tools.data)
    record(row, "loop_restore_empty", tools.run(loop))
    check_restored(tools, expected, "the inner loop's restore into an empty place")
    rm(tools.store)


def _rsync_and_cp(tools: Commands, row: dict, expected, seed: int) -> None:
    record(row, "rsync_unchanged", tools.run(tools.rsync()))
    check_restored(tools, expected, "rsync over unchanged data")
    change = change_one_percent(tools.data, seed=seed)
    record(row, "rsync_1pct", tools.run(tools.rsync()))
    check_restored(tools, expected, "rsync over 1 % changed")
    check_change_undone(change, "rsync")
    rm(tools.data)
    record(row, "cp_back", tools.run(["cp", "-a", str(tools.reference), str(tools.data)]))
    check_restored(tools, expected, "cp -a back")


def _restic(tools: Commands, row: dict, expected) -> None:
    tools.restic_init()
    env, data = tools.restic_env, tools.data
    record(row, "restic_full", tools.run(tools.restic_backup(), cwd=data, env=env))
    record(row, "restic_unchanged", tools.run(tools.restic_backup(), cwd=data, env=env))
    rm(data)
    record(row, "restic_restore", tools.run(tools.restic_restore(), env=env))
    check_restored(tools, expected, "restic restore")
    rm(tools.repo)
    rm(tools.work / "restic-cache")


def _borg(tools: Commands, row: dict, expected) -> None:
    names = tools.top_level()
    env = tools.borg_env
    subprocess.run(["borg", "init", "-e", "none"], env=env, check=True, capture_output=True)
    for key, archive in (("borg_full", "full"), ("borg_unchanged", "again")):
        record(row, key, tools.run(tools.borg_create(archive, names), cwd=tools.data, env=env))
    rm(tools.data)
    tools.data.mkdir()
    record(row, "borg_restore", tools.run(["borg", "extract", "::full"], cwd=tools.data, env=env))
    check_restored(tools, expected, "borg extract")
    rm(tools.borg_repo)
    rm(tools.work / "borg-base")


def cell(c: dict, key: str | None) -> str:
    if not key or key not in c:
        return "-"
    cpu = c[key + "_user"] + c[key + "_sys"]
    return f"{c[key]:.2f} s ({cpu:.1f} CPU s, {c[key + '_rss_mb']:.0f} MB)"


def commands_table(results: dict) -> list[str]:
    lines = [
        "| size | files | scenario | `manage.py` | inner loop | reference | restic | borg "
        "| vs reference | vs best peer |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, size in results["sizes"].items():
        c = size.get("commands")
        if not c:
            continue
        for name, ours, loop, (ref_name, ref), peer_keys in SCENARIOS:
            peers = dict(peer_keys)
            ratios = [c[f"{ours}_vs_{key}"] for _, key in peer_keys if f"{ours}_vs_{key}" in c]
            best = f"{min(ratios):.2f}x" if ratios else "-"
            lines.append(
                f"| {label} | {c['files']:,} | {name} | {cell(c, ours)} | {cell(c, loop)} | "
                f"{ref_name} {cell(c, ref)} | {cell(c, peers.get('restic'))} | "
                f"{cell(c, peers.get('borg'))} | {c[f'{ours}_vs_ref']:.2f}x | {best} |"
            )
    return lines


# The growth table: each step's cost per file as the tree grows (issue 28, item 5).
GROWTH = (
    ("full backup", "cmd_full"),
    ("unchanged backup", "cmd_unchanged"),
    ("restore over unchanged", "cmd_restore_unchanged"),
    ("restore, 1 % changed", "cmd_restore_1pct"),
    ("restore into empty", "cmd_restore_empty"),
)


def growth_table(results: dict) -> list[str]:
    """The commands at each size: seconds (user + system CPU s), microseconds per file, and the
    largest peak RSS of any of them; the references' per-file cost beside."""
    sizes = [(label, s["commands"]) for label, s in results["sizes"].items() if s.get("commands")]
    if len(sizes) < 2:
        return []
    head = " | ".join(name for name, _ in GROWTH)
    lines = [
        f"| size | files | {head} | cp -a | find -printf | peak RSS |",
        "| --- | ---: |" + " ---: |" * (len(GROWTH) + 3),
    ]
    for label, c in sizes:
        peak = max(c[key + "_rss_mb"] for _, key in GROWTH)
        cells = " | ".join(_per_file(c, key) for _, key in GROWTH)
        lines.append(
            f"| {label} | {c['files']:,} | {cells} | {_per_file(c, 'cp')} | "
            f"{_per_file(c, 'scan')} | {peak:.0f} MB |"
        )
    return lines


def _per_file(c: dict, key: str) -> str:
    return (
        f"{c[key]:.2f} s ({c[key + '_user']:.1f} + {c[key + '_sys']:.1f} CPU s), "
        f"{c[key] / c['files'] * 1e6:.0f} us/file"
    )
